//! `cnet system check [--repair]`: drift between the gateway's records and what the
//! other services hold.

use serde::Serialize;

use super::print;
use crate::{
    cli::{CheckArgs, Format},
    gateway::Gateway,
    output,
};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DriftJson<'a> {
    service: &'a str,
    description: &'a str,
    repaired: bool,
}

/// Exit code 0 when everything agrees (or was repaired), 1 when drift remains.
pub async fn check(gateway: &Gateway, args: &CheckArgs) -> anyhow::Result<i32> {
    let drifts = gateway.check(args.repair).await?;
    match args.format {
        Format::Json => {
            let rows: Vec<_> = drifts
                .iter()
                .map(|d| DriftJson {
                    service: &d.service,
                    description: &d.description,
                    repaired: d.repaired,
                })
                .collect();
            print(&output::json(&rows))?;
        }
        Format::Table if drifts.is_empty() => {
            print("no drift: every service agrees with the gateway's records\n")?
        }
        Format::Table => {
            let rows: Vec<_> = drifts
                .iter()
                .map(|d| {
                    let repaired = if d.repaired { "repaired" } else { "" };
                    vec![d.service.clone(), d.description.clone(), repaired.to_owned()]
                })
                .collect();
            print(&output::table(&["SERVICE", "DRIFT", "STATUS"], &rows))?;
        }
    }
    Ok(if drifts.iter().all(|d| d.repaired) { 0 } else { 1 })
}
