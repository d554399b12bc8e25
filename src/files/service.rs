//! Storing and removing a file so that D1 and R2 never disagree, over two small seams: the
//! rows ([`FileRows`], D1 in the worker) and the objects ([`Objects`], R2 in the worker).
//! Tested natively with fakes that fail at every step.
//!
//! **Upload.** The row is written first, `pending` — in one statement that also checks the
//! user's quota, so two uploads at once cannot both squeeze under it — then the object, then
//! the row becomes `ready`. Only `ready` files are listed, served or attached.
//! - The object write fails: the row is removed; the client gets 503 and may retry.
//! - Marking the row `ready` fails: the object is removed, then the row; 503.
//! - Those clean-ups fail too (D1 or R2 gone altogether): what is left is a hidden `pending`
//!   row, with or without its object; [`sweep`] removes both later.
//!
//! **Delete.** The row is marked `deleting` (hidden at once), the object removed, then the row.
//! If the object cannot be removed the row goes back to `ready` (the file is still whole) and
//! the client gets 503; if the row cannot be removed, it stays hidden until [`sweep`].
//!
//! So there is never a listed file without bytes, and never an object without a row.

use futures::future::LocalBoxFuture;

use super::model::{object_key, FileRecord, STALE_AFTER_MS};
use crate::http::error::{ApiError, ApiResult};

/// The `files` rows of one deployment.
pub trait FileRows {
    /// Inserts `file` as `pending` unless the user's files (of every status) plus it would be
    /// over `quota` bytes; `false` when over.
    fn insert_pending<'a>(
        &'a self,
        file: &'a FileRecord,
        quota: u64,
    ) -> LocalBoxFuture<'a, ApiResult<bool>>;
    /// `pending` → `ready`.
    fn mark_ready<'a>(&'a self, user_id: &'a str, id: &'a str)
        -> LocalBoxFuture<'a, ApiResult<()>>;
    /// `ready` → `deleting`; `false` when the user has no such ready file.
    fn mark_deleting<'a>(
        &'a self,
        user_id: &'a str,
        id: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<bool>>;
    /// `deleting` → `ready` (a delete that could not remove the object).
    fn restore<'a>(&'a self, user_id: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>>;
    /// Removes the row, whatever its status.
    fn remove<'a>(&'a self, user_id: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>>;
    /// The ids of the user's `pending`/`deleting` rows created before `before_ms`.
    fn stale<'a>(
        &'a self,
        user_id: &'a str,
        before_ms: u64,
    ) -> LocalBoxFuture<'a, ApiResult<Vec<String>>>;
}

/// The object store holding file bytes.
pub trait Objects {
    /// What an upload's bytes are in this store's terms (a JS `Blob` in the worker).
    type Body;
    /// Stores `body` under `key`; the store checks it against `sha256` (hex).
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: &'a Self::Body,
        media_type: &'a str,
        sha256: &'a str,
    ) -> LocalBoxFuture<'a, ApiResult<()>>;
    /// Removes the objects (missing ones are not an error).
    fn delete<'a>(&'a self, keys: Vec<String>) -> LocalBoxFuture<'a, ApiResult<()>>;
}

/// 503 for storage that failed part-way (nothing half-written was left visible).
pub fn storage_failed(detail: &ApiError) -> ApiError {
    ApiError::new(
        503,
        "storage_unavailable",
        "The file could not be stored right now; nothing was kept. Try again.",
    )
    .with_header("retry-after", "1")
    .with_internal(format!(
        "{}: {}",
        detail.code,
        detail.internal.as_deref().unwrap_or(&detail.message)
    ))
}

/// 413 for an upload that would take the user over `FILE_STORAGE_QUOTA_BYTES`.
pub fn over_quota(quota: u64) -> ApiError {
    ApiError::new(
        413,
        "storage_quota_exceeded",
        format!("This upload would take your files over FILE_STORAGE_QUOTA_BYTES ({quota} bytes); delete some first."),
    )
}

/// Stores `file` (already checked: type, size) with its bytes `body`, as the module says.
pub async fn store<R: FileRows, O: Objects>(
    rows: &R,
    objects: &O,
    file: &FileRecord,
    body: &O::Body,
    quota: u64,
) -> ApiResult<()> {
    if !rows.insert_pending(file, quota).await? {
        return Err(over_quota(quota));
    }
    let key = object_key(&file.user_id, &file.id);
    if let Err(err) = objects
        .put(&key, body, &file.media_type, &file.sha256)
        .await
    {
        let _ = rows.remove(&file.user_id, &file.id).await;
        return Err(storage_failed(&err));
    }
    if let Err(err) = rows.mark_ready(&file.user_id, &file.id).await {
        if objects.delete(vec![key]).await.is_ok() {
            let _ = rows.remove(&file.user_id, &file.id).await;
        }
        return Err(storage_failed(&err));
    }
    Ok(())
}

/// Removes the user's file `id`; 404 when they have no such file.
pub async fn remove<R: FileRows, O: Objects>(
    rows: &R,
    objects: &O,
    user_id: &str,
    id: &str,
) -> ApiResult<()> {
    if !rows.mark_deleting(user_id, id).await? {
        return Err(ApiError::not_found());
    }
    if let Err(err) = objects.delete(vec![object_key(user_id, id)]).await {
        let _ = rows.restore(user_id, id).await;
        return Err(storage_failed(&err));
    }
    // The bytes are gone; a row left behind is `deleting`, hidden, and swept later.
    let _ = rows.remove(user_id, id).await;
    Ok(())
}

/// Removes the user's rows stuck `pending`/`deleting` for longer than [`STALE_AFTER_MS`], with
/// their objects (the object first: a row is never removed while its object may remain).
pub async fn sweep<R: FileRows, O: Objects>(
    rows: &R,
    objects: &O,
    user_id: &str,
    now_ms: u64,
) -> ApiResult<()> {
    let stale = rows
        .stale(user_id, now_ms.saturating_sub(STALE_AFTER_MS))
        .await?;
    if stale.is_empty() {
        return Ok(());
    }
    let keys = stale.iter().map(|id| object_key(user_id, id)).collect();
    objects.delete(keys).await?;
    for id in &stale {
        rows.remove(user_id, id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, BTreeSet};

    use futures::executor::block_on;
    use futures::FutureExt;

    use super::*;

    /// Which step fails next.
    #[derive(Default)]
    struct Faults {
        insert: Cell<bool>,
        ready: Cell<bool>,
        remove_row: Cell<bool>,
        put: Cell<bool>,
        delete_object: Cell<bool>,
    }

    #[derive(Default)]
    struct Fake {
        rows: RefCell<BTreeMap<String, FileRecord>>,
        objects: RefCell<BTreeSet<String>>,
        faults: Faults,
    }

    fn fail(what: &str) -> ApiError {
        ApiError::internal(format!("injected {what} failure"))
    }

    fn check(flag: &Cell<bool>, what: &str) -> ApiResult<()> {
        if flag.get() {
            Err(fail(what))
        } else {
            Ok(())
        }
    }

    impl FileRows for Fake {
        fn insert_pending<'a>(
            &'a self,
            file: &'a FileRecord,
            quota: u64,
        ) -> LocalBoxFuture<'a, ApiResult<bool>> {
            async move {
                check(&self.faults.insert, "insert")?;
                let used: u64 = self
                    .rows
                    .borrow()
                    .values()
                    .filter(|r| r.user_id == file.user_id)
                    .map(|r| r.size)
                    .sum();
                if used + file.size > quota {
                    return Ok(false);
                }
                let mut row = file.clone();
                row.status = "pending".into();
                self.rows.borrow_mut().insert(file.id.clone(), row);
                Ok(true)
            }
            .boxed_local()
        }
        fn mark_ready<'a>(&'a self, _: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
            async move {
                check(&self.faults.ready, "ready")?;
                self.rows.borrow_mut().get_mut(id).expect("row").status = "ready".into();
                Ok(())
            }
            .boxed_local()
        }
        fn mark_deleting<'a>(
            &'a self,
            user_id: &'a str,
            id: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<bool>> {
            async move {
                let mut rows = self.rows.borrow_mut();
                match rows.get_mut(id) {
                    Some(row) if row.user_id == user_id && row.status == "ready" => {
                        row.status = "deleting".into();
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            .boxed_local()
        }
        fn restore<'a>(&'a self, _: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
            async move {
                self.rows.borrow_mut().get_mut(id).expect("row").status = "ready".into();
                Ok(())
            }
            .boxed_local()
        }
        fn remove<'a>(&'a self, _: &'a str, id: &'a str) -> LocalBoxFuture<'a, ApiResult<()>> {
            async move {
                check(&self.faults.remove_row, "remove")?;
                self.rows.borrow_mut().remove(id);
                Ok(())
            }
            .boxed_local()
        }
        fn stale<'a>(
            &'a self,
            user_id: &'a str,
            before_ms: u64,
        ) -> LocalBoxFuture<'a, ApiResult<Vec<String>>> {
            async move {
                Ok(self
                    .rows
                    .borrow()
                    .values()
                    .filter(|r| {
                        r.user_id == user_id && r.status != "ready" && r.created_at < before_ms
                    })
                    .map(|r| r.id.clone())
                    .collect())
            }
            .boxed_local()
        }
    }

    impl Objects for Fake {
        type Body = ();
        fn put<'a>(
            &'a self,
            key: &'a str,
            _: &'a (),
            _: &'a str,
            _: &'a str,
        ) -> LocalBoxFuture<'a, ApiResult<()>> {
            async move {
                check(&self.faults.put, "put")?;
                self.objects.borrow_mut().insert(key.to_string());
                Ok(())
            }
            .boxed_local()
        }
        fn delete<'a>(&'a self, keys: Vec<String>) -> LocalBoxFuture<'a, ApiResult<()>> {
            async move {
                check(&self.faults.delete_object, "delete")?;
                for key in keys {
                    self.objects.borrow_mut().remove(&key);
                }
                Ok(())
            }
            .boxed_local()
        }
    }

    fn file(id: &str, size: u64) -> FileRecord {
        FileRecord {
            id: id.into(),
            user_id: "u".into(),
            name: "a.png".into(),
            media_type: "image/png".into(),
            size,
            sha256: "00".into(),
            status: "pending".into(),
            created_at: 1_000,
            analysis: None,
        }
    }

    impl Fake {
        /// The invariant: every object has a row, and every ready row has its object.
        fn consistent(&self) {
            let rows = self.rows.borrow();
            for key in self.objects.borrow().iter() {
                let id = key.rsplit('/').next().expect("id");
                assert!(rows.contains_key(id), "object {key} without a row");
            }
            for row in rows.values().filter(|r| r.status == "ready") {
                assert!(
                    self.objects
                        .borrow()
                        .contains(&object_key(&row.user_id, &row.id)),
                    "ready row {} without its object",
                    row.id
                );
            }
        }
        fn ready(&self) -> Vec<String> {
            self.rows
                .borrow()
                .values()
                .filter(|r| r.status == "ready")
                .map(|r| r.id.clone())
                .collect()
        }
    }

    #[test]
    fn a_stored_file_is_a_ready_row_and_its_object() {
        let fake = Fake::default();
        block_on(store(&fake, &fake, &file("f1", 10), &(), 100)).expect("stored");
        assert_eq!(fake.ready(), ["f1"]);
        fake.consistent();
    }

    #[test]
    fn the_quota_counts_every_row_and_refuses_with_413_naming_it() {
        let fake = Fake::default();
        block_on(store(&fake, &fake, &file("f1", 60), &(), 100)).expect("first");
        let err = block_on(store(&fake, &fake, &file("f2", 50), &(), 100)).expect_err("over");
        assert_eq!((err.status, err.code), (413, "storage_quota_exceeded"));
        assert!(err.message.contains("FILE_STORAGE_QUOTA_BYTES"));
        fake.consistent();
    }

    #[test]
    fn an_object_write_failure_leaves_neither_row_nor_object() {
        let fake = Fake::default();
        fake.faults.put.set(true);
        let err = block_on(store(&fake, &fake, &file("f1", 10), &(), 100)).expect_err("fails");
        assert_eq!(err.status, 503);
        assert!(fake.rows.borrow().is_empty() && fake.objects.borrow().is_empty());
    }

    #[test]
    fn a_row_update_failure_removes_the_object_and_the_row() {
        let fake = Fake::default();
        fake.faults.ready.set(true);
        let err = block_on(store(&fake, &fake, &file("f1", 10), &(), 100)).expect_err("fails");
        assert_eq!(err.status, 503);
        assert!(fake.rows.borrow().is_empty() && fake.objects.borrow().is_empty());
    }

    #[test]
    fn when_clean_ups_fail_too_only_hidden_rows_remain_and_the_sweep_clears_them() {
        let fake = Fake::default();
        fake.faults.ready.set(true);
        fake.faults.delete_object.set(true);
        block_on(store(&fake, &fake, &file("f1", 10), &(), 100)).expect_err("fails");
        fake.faults.put.set(true);
        fake.faults.remove_row.set(true);
        block_on(store(&fake, &fake, &file("f2", 10), &(), 100)).expect_err("fails");
        fake.consistent();
        assert!(fake.ready().is_empty(), "nothing is listed");
        let faults = &fake.faults;
        for flag in [
            &faults.ready,
            &faults.delete_object,
            &faults.put,
            &faults.remove_row,
        ] {
            flag.set(false);
        }
        block_on(sweep(&fake, &fake, "u", 1_000 + STALE_AFTER_MS - 1)).expect("too early");
        assert_eq!(fake.rows.borrow().len(), 2, "recent rows are left alone");
        block_on(sweep(&fake, &fake, "u", 1_001 + STALE_AFTER_MS)).expect("sweep");
        assert!(fake.rows.borrow().is_empty() && fake.objects.borrow().is_empty());
    }

    #[test]
    fn delete_removes_object_then_row_and_keeps_the_file_whole_if_the_object_stays() {
        let fake = Fake::default();
        block_on(store(&fake, &fake, &file("f1", 10), &(), 100)).expect("stored");
        fake.faults.delete_object.set(true);
        assert_eq!(
            block_on(remove(&fake, &fake, "u", "f1"))
                .expect_err("fails")
                .status,
            503
        );
        assert_eq!(fake.ready(), ["f1"], "still listed and whole");
        fake.consistent();
        fake.faults.delete_object.set(false);
        fake.faults.remove_row.set(true);
        block_on(remove(&fake, &fake, "u", "f1")).expect("deleted");
        assert!(fake.ready().is_empty() && fake.objects.borrow().is_empty());
        fake.consistent();
        assert_eq!(
            block_on(remove(&fake, &fake, "u", "f1"))
                .expect_err("gone")
                .status,
            404
        );
        assert_eq!(
            block_on(remove(&fake, &fake, "other", "f1"))
                .expect_err("not theirs")
                .status,
            404
        );
    }
}
