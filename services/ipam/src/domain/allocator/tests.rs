//! Scenario tests of the allocator, most of them replaying what Docker 20.10 was
//! observed to do (DOCKER_SEMANTICS.md NET-3 … NET-12).

use super::*;

fn create(
    allocator: &mut Allocator,
    id: &str,
    subnet: &str,
    ip_range: &str,
    gateway: &str,
) -> Result<Pool, Error> {
    create_excluding(allocator, id, subnet, ip_range, gateway, &[])
}

fn create_excluding(
    allocator: &mut Allocator,
    id: &str,
    subnet: &str,
    ip_range: &str,
    gateway: &str,
    exclude: &[&str],
) -> Result<Pool, Error> {
    let exclude: Vec<String> = exclude.iter().map(|e| e.to_string()).collect();
    let request = PoolRequest::parse(id, subnet, ip_range, gateway, &exclude)?;
    allocator.create_pool(&request).map(Outcome::into_inner)
}

fn allocate(
    allocator: &mut Allocator,
    pool: &str,
    owner: &str,
    address: &str,
) -> Result<String, Error> {
    let request = AllocationRequest::parse(pool, owner, address)?;
    allocator.allocate(&request).map(|outcome| outcome.into_inner().address.to_string())
}

fn release(allocator: &mut Allocator, pool: &str, owner: &str) -> Option<String> {
    let pool = PoolId::parse(pool).unwrap();
    let owner = Owner::parse(owner).unwrap();
    allocator.release(&pool, &owner).map(|allocation| allocation.address.to_string())
}

fn lab() -> Allocator {
    let mut allocator = Allocator::default();
    create(&mut allocator, "vswitch01", "172.16.1.0/16", "172.16.1.0/24", "172.16.1.1").unwrap();
    allocator
}

fn free(allocator: &Allocator, pool: &str) -> (u64, u64) {
    let summary = allocator.pool(&PoolId::parse(pool).unwrap()).unwrap();
    (summary.allocated, summary.free)
}

/// A step of a scenario: (owner, static address or "", expected address or error text).
type Step<'a> = (&'a str, &'a str, Result<&'a str, &'a str>);

fn replay(allocator: &mut Allocator, pool: &str, steps: &[Step<'_>]) {
    for (owner, address, expected) in steps {
        let got = allocate(allocator, pool, owner, address).map_err(|e| e.to_string());
        let expected = expected.map(str::to_owned).map_err(str::to_owned);
        assert_eq!(got, expected, "owner {owner} address {address:?}");
    }
}

#[test]
fn lab_gives_range_start_then_skips_the_gateway() {
    let mut allocator = lab();
    replay(
        &mut allocator,
        "vswitch01",
        &[
            ("centos1", "", Ok("172.16.1.0")),
            ("centos2", "", Ok("172.16.1.2")),
            ("centos3", "", Ok("172.16.1.3")),
            ("centos0", "172.16.1.4", Ok("172.16.1.4")),
        ],
    );
    // NET-4: a freed address is handed out again at once, then allocation goes on.
    assert_eq!(release(&mut allocator, "vswitch01", "centos1").as_deref(), Some("172.16.1.0"));
    replay(
        &mut allocator,
        "vswitch01",
        &[("centos4", "", Ok("172.16.1.0")), ("centos5", "", Ok("172.16.1.5"))],
    );
}

#[test]
fn a_slash_29_holds_exactly_five() {
    let mut allocator = Allocator::default();
    create(&mut allocator, "conf-small", "10.123.9.0/29", "", "").unwrap();
    assert_eq!(free(&allocator, "conf-small"), (0, 5));
    let exhausted = "no available IPv4 addresses on this network's address pools: conf-small";
    replay(
        &mut allocator,
        "conf-small",
        &[
            ("c1", "", Ok("10.123.9.2")),
            ("c2", "", Ok("10.123.9.3")),
            ("c3", "", Ok("10.123.9.4")),
            ("c4", "", Ok("10.123.9.5")),
            ("c5", "", Ok("10.123.9.6")),
            ("c6", "", Err(exhausted)),
        ],
    );
    assert_eq!(free(&allocator, "conf-small"), (5, 0));
    assert_eq!(release(&mut allocator, "conf-small", "c1").as_deref(), Some("10.123.9.2"));
    assert_eq!(free(&allocator, "conf-small"), (4, 1));
    replay(
        &mut allocator,
        "conf-small",
        &[("c6", "", Ok("10.123.9.2")), ("c7", "", Err(exhausted))],
    );
}

#[test]
fn lowest_free_is_reused_after_release() {
    let mut allocator = Allocator::default();
    create(&mut allocator, "n", "10.0.0.0/24", "", "").unwrap();
    for owner in ["a", "b", "c", "d"] {
        allocate(&mut allocator, "n", owner, "").unwrap();
    }
    release(&mut allocator, "n", "c");
    release(&mut allocator, "n", "a");
    replay(
        &mut allocator,
        "n",
        &[("e", "", Ok("10.0.0.2")), ("f", "", Ok("10.0.0.4")), ("g", "", Ok("10.0.0.6"))],
    );
}

#[test]
fn static_addresses() {
    let mut allocator = lab();
    let in_use = |address: &str| format!("failed to allocate {address}: Address already in use");
    replay(
        &mut allocator,
        "vswitch01",
        &[
            ("centos1", "", Ok("172.16.1.0")),
            // NET-9: inside the subnet but outside the range is fine.
            ("static1", "172.16.2.7", Ok("172.16.2.7")),
            ("static2", "172.16.2.7", Err(&in_use("172.16.2.7"))),
            ("static3", "172.16.1.0", Err(&in_use("172.16.1.0"))),
            ("static4", "172.16.1.1", Err(&in_use("172.16.1.1"))),
            ("static5", "172.16.0.0", Err(&in_use("172.16.0.0"))),
            ("static6", "172.16.255.255", Err(&in_use("172.16.255.255"))),
            (
                "static7",
                "10.9.9.9",
                Err(
                    "Invalid address 10.9.9.9: It does not belong to any of this network's subnets",
                ),
            ),
            ("static8", "300.1.1.1", Err("invalid IPv4 address: 300.1.1.1")),
            // Automatic allocation steps around a static address inside the range.
            ("static9", "172.16.1.3", Ok("172.16.1.3")),
            ("centos2", "", Ok("172.16.1.2")),
            ("centos3", "", Ok("172.16.1.4")),
        ],
    );
    let held = allocator.allocations(Some(&PoolId::parse("vswitch01").unwrap())).unwrap();
    let static1 = held.iter().find(|a| a.owner.as_str() == "static1").unwrap();
    assert!(static1.is_static);
    assert_eq!((static1.prefix_len, static1.gateway.to_string()), (16, "172.16.1.1".to_owned()));
    // 256 in the range minus the gateway, minus .0 .2 .3 .4; 172.16.2.7 is outside it.
    assert_eq!(free(&allocator, "vswitch01"), (5, 251));
}

#[test]
fn allocate_is_idempotent_per_owner() {
    let mut allocator = lab();
    let request = AllocationRequest::parse("vswitch01", "c1", "").unwrap();
    let first = allocator.allocate(&request).unwrap();
    assert!(matches!(first, Outcome::Created(_)));
    assert_eq!(allocator.allocate(&request).unwrap(), Outcome::Existing(first.into_inner()));
    replay(
        &mut allocator,
        "vswitch01",
        &[
            ("c1", "172.16.1.0", Ok("172.16.1.0")),
            (
                "c1",
                "172.16.1.9",
                Err("owner c1 already holds 172.16.1.0 in pool vswitch01, not 172.16.1.9"),
            ),
        ],
    );
    assert_eq!(free(&allocator, "vswitch01"), (1, 254));
}

#[test]
fn unknown_pools_and_owners() {
    let mut allocator = lab();
    assert_eq!(
        allocate(&mut allocator, "nope", "c1", "").unwrap_err().to_string(),
        "pool nope not found"
    );
    assert_eq!(release(&mut allocator, "nope", "c1"), None);
    assert_eq!(release(&mut allocator, "vswitch01", "c1"), None);
    let nope = PoolId::parse("nope").unwrap();
    assert_eq!(allocator.pool(&nope).unwrap_err(), Error::PoolNotFound { id: "nope".into() });
    assert!(allocator.allocations(Some(&nope)).is_err());
    assert_eq!(allocator.delete_pool(&nope, false), Ok(None));
    assert!(matches!(
        allocate(&mut allocator, "vswitch01", "", ""),
        Err(Error::InvalidName { .. })
    ));
}

#[test]
fn overlapping_subnets_are_refused() {
    let overlap = "pool overlaps with other one on this address space";
    let cases = [
        ("172.16.0.0/16", true),
        ("172.16.5.0/24", true),
        ("172.16.9.9/24", true),
        ("172.0.0.0/8", true),
        ("172.17.0.0/16", false),
    ];
    for (subnet, refused) in cases {
        let mut allocator = lab();
        let result = create(&mut allocator, "other", subnet, "", "");
        match result {
            Err(error) if refused => {
                assert!(matches!(error, Error::Overlap { .. }), "{subnet}: {error}");
                assert!(error.to_string().starts_with(overlap), "{error}");
                assert!(error.to_string().contains("vswitch01 (172.16.1.0/16)"), "{error}");
            }
            Ok(_) if !refused => {}
            other => panic!("{subnet}: {other:?}"),
        }
    }
}

#[test]
fn create_pool_is_idempotent_per_id() {
    let mut allocator = lab();
    let request =
        PoolRequest::parse("vswitch01", "172.16.1.0/16", "172.16.1.0/24", "172.16.1.1", &[])
            .unwrap();
    assert!(matches!(allocator.create_pool(&request), Ok(Outcome::Existing(_))));
    let error = create(&mut allocator, "vswitch01", "172.16.1.0/16", "", "").unwrap_err();
    assert_eq!(error.to_string(), "pool vswitch01 already exists with different parameters");

    let mut allocator = Allocator::default();
    let auto = create(&mut allocator, "auto", "", "", "").unwrap();
    assert_eq!(create(&mut allocator, "auto", "", "", ""), Ok(auto));
    assert!(matches!(
        create(&mut allocator, "auto", "172.17.0.0/16", "", ""),
        Err(Error::PoolExists { .. })
    ));
}

#[test]
fn automatic_subnets_follow_dockers_order() {
    let mut allocator = Allocator::default();
    let first = create(&mut allocator, "a", "", "", "").unwrap();
    assert_eq!(first.subnet().as_str(), "172.17.0.0/16");
    assert_eq!(first.gateway().to_string(), "172.17.0.1");
    assert!(first.auto_subnet() && first.auto_gateway());
    let cases: [(&[&str], &str); 4] = [
        (&[], "172.18.0.0/16"),
        (&["172.19.0.0/16", "172.20.3.4"], "172.21.0.0/16"),
        (&["172.16.0.0/12"], "192.168.0.0/20"),
        (&["fd00::/8", "172.19.128.0/17"], "172.20.0.0/16"),
    ];
    for (index, (exclude, expected)) in cases.into_iter().enumerate() {
        let id = format!("auto{index}");
        let pool = create_excluding(&mut allocator, &id, "", "", "", exclude).unwrap();
        assert_eq!(pool.subnet().as_str(), expected, "{exclude:?}");
    }
}

#[test]
fn exclude_alone_decides_on_an_empty_allocator() {
    let cases: [(&[&str], &str); 3] = [
        (&["172.17.0.0/16"], "172.18.0.0/16"),
        (&["172.17.0.1"], "172.18.0.0/16"),
        (&["172.16.0.0/12", "192.168.0.0/16"], "none"),
    ];
    for (exclude, expected) in cases {
        let mut allocator = Allocator::default();
        let got = create_excluding(&mut allocator, "n", "", "", "", exclude)
            .map(|pool| pool.subnet().to_string())
            .unwrap_or_else(|error| {
                assert_eq!(error, Error::NoDefaultSubnet);
                "none".to_owned()
            });
        assert_eq!(got, expected, "{exclude:?}");
    }
    let error =
        create_excluding(&mut Allocator::default(), "n", "", "", "", &["bogus"]).unwrap_err();
    assert_eq!(error, Error::InvalidExclude { value: "bogus".into() });
}

#[test]
fn default_pools_run_out() {
    let mut allocator = Allocator::default();
    for index in 0..31 {
        create(&mut allocator, &format!("n{index}"), "", "", "").unwrap();
    }
    let last = allocator.pool(&PoolId::parse("n30").unwrap()).unwrap();
    assert_eq!(last.pool.subnet().as_str(), "192.168.240.0/20");
    let error = create(&mut allocator, "n31", "", "", "").unwrap_err();
    assert_eq!(
        error.to_string(),
        "could not find an available, non-overlapping IPv4 address pool among the defaults to \
         assign to the network"
    );
}

#[test]
fn deleting_pools() {
    let mut allocator = lab();
    allocate(&mut allocator, "vswitch01", "c1", "").unwrap();
    allocate(&mut allocator, "vswitch01", "c2", "").unwrap();
    let id = PoolId::parse("vswitch01").unwrap();
    let error = allocator.delete_pool(&id, false).unwrap_err();
    assert_eq!(error.to_string(), "pool vswitch01 still has 2 allocations");
    let removed = allocator.delete_pool(&id, true).unwrap().unwrap();
    let addresses: Vec<_> = removed.allocations.iter().map(|a| a.address.to_string()).collect();
    assert_eq!(addresses, ["172.16.1.0", "172.16.1.2"]);
    assert!(allocator.pools().is_empty());
    // The subnet is free again, and nothing of the old pool's allocations remains.
    create(&mut allocator, "vswitch01", "172.16.1.0/16", "172.16.1.0/24", "172.16.1.1").unwrap();
    assert_eq!(allocate(&mut allocator, "vswitch01", "c3", ""), Ok("172.16.1.0".into()));
}

#[test]
fn restoring_refuses_inconsistent_records() {
    let mut allocator = lab();
    let id = PoolId::parse("vswitch01").unwrap();
    let owner = |name: &str| Owner::parse(name).unwrap();
    let address = |text: &str| text.parse::<Ipv4Addr>().unwrap();
    allocator.restore_allocation(&id, owner("c1"), address("172.16.1.9"), false).unwrap();
    let cases = [
        ("c2", "172.16.1.9", Error::AddressInUse { address: address("172.16.1.9") }),
        ("c2", "172.16.1.1", Error::AddressInUse { address: address("172.16.1.1") }),
        ("c2", "10.0.0.1", Error::AddressOutsideSubnet { address: address("10.0.0.1") }),
        ("c1", "172.16.1.10", Error::OwnerTaken { owner: "c1".into(), pool: "vswitch01".into() }),
    ];
    for (name, text, expected) in cases {
        assert_eq!(
            allocator.restore_allocation(&id, owner(name), address(text), false),
            Err(expected)
        );
    }
    let orphan = allocator.restore_allocation(
        &PoolId::parse("gone").unwrap(),
        owner("c1"),
        address("10.0.0.1"),
        false,
    );
    assert_eq!(orphan, Err(Error::PoolNotFound { id: "gone".into() }));
    assert_eq!(free(&allocator, "vswitch01"), (1, 254));
}

#[test]
fn allocations_are_listed_by_pool_then_address() {
    let mut allocator = lab();
    create(&mut allocator, "b", "10.0.0.0/24", "", "").unwrap();
    for (pool, owner, address) in
        [("vswitch01", "z", ""), ("b", "y", "10.0.0.9"), ("vswitch01", "a", ""), ("b", "x", "")]
    {
        allocate(&mut allocator, pool, owner, address).unwrap();
    }
    let listed: Vec<_> = allocator
        .allocations(None)
        .unwrap()
        .into_iter()
        .map(|a| format!("{}/{}={}", a.pool_id, a.owner, a.address))
        .collect();
    assert_eq!(
        listed,
        ["b/x=10.0.0.2", "b/y=10.0.0.9", "vswitch01/z=172.16.1.0", "vswitch01/a=172.16.1.2"]
    );
}
