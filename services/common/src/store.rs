//! The sled store each service keeps under `<state_dir>/<service>`: named tables of
//! JSON values keyed by strings. Mutations are durable only after [`Store::flush`],
//! which every service awaits before acknowledging a request.

use std::{marker::PhantomData, path::Path};

use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: record {key:?} is corrupt: {source}")]
    Corrupt { key: String, source: serde_json::Error },
}

impl From<StoreError> for tonic::Status {
    fn from(error: StoreError) -> Self {
        tonic::Status::internal(error.to_string())
    }
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(sled::Error::Io)?;
        Ok(Self { db: sled::Config::new().path(dir).open()? })
    }

    /// A typed table; values of different types belong in different tables.
    pub fn table<T>(&self, name: &str) -> Result<Table<T>, StoreError> {
        Ok(Table { tree: self.db.open_tree(name)?, _value: PhantomData })
    }

    /// Makes every mutation so far durable.
    ///
    /// The flush is one small append and a `sync_file_range`, some 0.2 ms, so it runs on
    /// the calling thread: handing it to sled's I/O threads (`flush_async`) and waiting
    /// to be woken again cost more than the flush itself. On a multi-threaded runtime the
    /// worker first hands its other tasks over (`block_in_place`), so a slow disk stalls
    /// only this request.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let flush = || self.db.flush();
        match tokio::runtime::Handle::try_current().map(|runtime| runtime.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(flush)?,
            _ => flush()?,
        };
        Ok(())
    }
}

pub struct Table<T> {
    tree: sled::Tree,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Self { tree: self.tree.clone(), _value: PhantomData }
    }
}

impl<T: Serialize + DeserializeOwned> Table<T> {
    pub fn get(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree.get(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    pub fn put(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("store values serialise");
        self.tree.insert(key, bytes)?;
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.tree.remove(key)?.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Every record, in key order.
    pub fn all(&self) -> Result<Vec<(String, T)>, StoreError> {
        self.scan("")
    }

    /// Records whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, bytes) = entry?;
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = decode(&key, &bytes)?;
                Ok((key, value))
            })
            .collect()
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|source| StoreError::Corrupt { key: key.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let table = store.table::<Vec<u32>>("numbers").unwrap();
            table.put("a/1", &vec![1]).unwrap();
            table.put("a/2", &vec![2, 2]).unwrap();
            table.put("b/1", &vec![3]).unwrap();
            assert_eq!(table.delete("b/1").unwrap(), Some(vec![3]));
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let table = store.table::<Vec<u32>>("numbers").unwrap();
        assert_eq!(table.get("a/2").unwrap(), Some(vec![2, 2]));
        assert_eq!(table.scan("a/").unwrap().len(), 2);
        assert_eq!(table.get("b/1").unwrap(), None);
    }
}
