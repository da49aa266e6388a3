//! Unit tests of the control plane over a real SQLite store and code store.

use super::*;
use std::io::Write;
use updraft_store::SqliteStore;

const ACCT: &str = "123456789012";

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn plane(dir: &std::path::Path) -> ControlPlane {
    let store = Arc::new(SqliteStore::open(&dir.join("db.sqlite")).unwrap());
    let code = CodeStore::open(dir.join("code"), Default::default()).unwrap();
    ControlPlane::open(
        store,
        code,
        ControlConfig {
            region: "us-east-1".into(),
            account_concurrency: 1000,
        },
    )
    .unwrap()
}

fn create(p: &ControlPlane, name: &str) -> Arc<FunctionConfig> {
    p.create_function(
        ACCT,
        CreateFunction {
            name: name.into(),
            runtime: Some("python3.12".into()),
            role: "arn:aws:iam::123456789012:role/r".into(),
            handler: Some("app.handler".into()),
            zip: zip_of(&[("app.py", "def handler(e, c):\n    return e\n")]),
            ..Default::default()
        },
    )
    .unwrap()
    .0
}

#[test]
fn create_get_and_conflict() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    let c = create(&p, "f1");
    assert_eq!(c.timeout, 3);
    assert_eq!(c.memory_size, 128);
    assert_eq!(c.logging.log_group, "/aws/lambda/f1");
    let got = p
        .get_function(
            ACCT,
            "arn:aws:lambda:us-east-1:123456789012:function:f1",
            None,
        )
        .unwrap();
    assert_eq!(got.config.revision_id, c.revision_id);
    let err = p
        .create_function(
            ACCT,
            CreateFunction {
                name: "f1".into(),
                runtime: Some("python3.12".into()),
                role: "arn:aws:iam::123456789012:role/r".into(),
                handler: Some("app.handler".into()),
                zip: zip_of(&[("app.py", "x")]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(
        p.get_function(ACCT, "nope", None).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn versions_aliases_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let p = plane(d.path());
        create(&p, "f");
        let v1 = p.publish_version(ACCT, "f", None, None, None).unwrap();
        assert_eq!(v1.version, "1");
        // Nothing changed: the same version comes back.
        let again = p.publish_version(ACCT, "f", None, None, None).unwrap();
        assert_eq!(again.version, "1");
        p.update_configuration(
            ACCT,
            "f",
            ConfigUpdate {
                timeout: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
        let v2 = p.publish_version(ACCT, "f", None, None, None).unwrap();
        assert_eq!(v2.version, "2");
        assert_eq!(v2.timeout, 10);
        let mut w = BTreeMap::new();
        w.insert("2".to_string(), 0.25);
        p.create_alias(ACCT, "f", "live", "1", None, w).unwrap();
        assert_eq!(
            p.delete_function(ACCT, "f", Some("1")).unwrap_err().kind,
            ErrorKind::Conflict
        );
    }
    let p = plane(d.path());
    let versions = p.list_versions(ACCT, "f", None, None).unwrap();
    let names: Vec<_> = versions.items.iter().map(|v| v.version.clone()).collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);
    let a = p.get_alias(ACCT, "f", "live").unwrap();
    assert_eq!(a.additional_version_weights.get("2"), Some(&0.25));
    // Weighted routing picks the additional version below its weight.
    assert_eq!(
        p.resolve(ACCT, "f:live", None, 0.1)
            .unwrap()
            .executed_version,
        "2"
    );
    assert_eq!(
        p.resolve(ACCT, "f:live", None, 0.9)
            .unwrap()
            .executed_version,
        "1"
    );
}

#[test]
fn revision_preconditions() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    create(&p, "f");
    let err = p
        .update_configuration(
            ACCT,
            "f",
            ConfigUpdate {
                revision_id: Some("wrong".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PreconditionFailed);
    let err = p
        .publish_version(ACCT, "f", Some("bogus"), None, None)
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
}

#[test]
fn pagination_walks_everything_once() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    for i in 0..5 {
        create(&p, &format!("fn{i}"));
    }
    let mut marker = None;
    let mut seen = Vec::new();
    loop {
        let page = p
            .list_functions(ACCT, false, marker.as_deref(), Some(2))
            .unwrap();
        seen.extend(page.items.iter().map(|c| c.name.clone()));
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(seen, ["fn0", "fn1", "fn2", "fn3", "fn4"]);
}

#[test]
fn provisioned_configs_are_checked_kept_and_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    {
        let p = plane(d.path());
        create(&p, "f");
        p.publish_version(ACCT, "f", None, None, None).unwrap();
        p.create_alias(ACCT, "f", "live", "1", None, BTreeMap::new())
            .unwrap();
        p.create_alias(ACCT, "f", "dev", "$LATEST", None, BTreeMap::new())
            .unwrap();
        let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
        {
            let changes = changes.clone();
            p.subscribe(move |c| {
                if let Change::Provisioned { function_arn } = c {
                    changes.lock().unwrap().push(function_arn.clone());
                }
            });
        }
        let e = p
            .put_provisioned(ACCT, "f", Some("$LATEST"), 1)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        assert_eq!(e.message, provisioned::UNPUBLISHED);
        let e = p.put_provisioned(ACCT, "f", Some("dev"), 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        let e = p.put_provisioned(ACCT, "f", Some("1"), 0).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        let e = p.put_provisioned(ACCT, "f", Some("7"), 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(p.get_provisioned(ACCT, "f", Some("1")).unwrap().is_none());

        let v = p.put_provisioned(ACCT, "f", Some("1"), 2).unwrap();
        assert_eq!(v.function_arn, format!("{}:1", p.arn(ACCT, "f")));
        assert_eq!(v.config.requested, 2);
        assert_eq!(changes.lock().unwrap().len(), 1);
        // The alias on version 1 conflicts with version 1's configuration.
        let e = p.put_provisioned(ACCT, "f", Some("live"), 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        // The account keeps 100 unreserved.
        let e = p.put_provisioned(ACCT, "f", Some("1"), 901).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        assert!(e.message.contains("[100]"), "{}", e.message);
        // Reserved concurrency may not drop below the provisioned.
        assert!(p.put_concurrency(ACCT, "f", 1).is_err());
        p.put_concurrency(ACCT, "f", 2).unwrap();
        assert!(p.put_provisioned(ACCT, "f", Some("1"), 3).is_err());
        p.delete_concurrency(ACCT, "f").unwrap();

        let targets = p.provisioned_targets(&p.arn(ACCT, "f"));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].resolved.executed_version, "1");
        assert_eq!(targets[0].count, 2);
        assert_eq!(p.provisioned_functions(), vec![p.arn(ACCT, "f")]);
        let page = p.list_provisioned(ACCT, "f", None, None).unwrap();
        assert_eq!(page.items.len(), 1);
    }
    let p = plane(d.path());
    let got = p.get_provisioned(ACCT, "f", Some("1")).unwrap().unwrap();
    assert_eq!(got.config.requested, 2);
    p.delete_provisioned(ACCT, "f", Some("1")).unwrap();
    assert!(p.get_provisioned(ACCT, "f", Some("1")).unwrap().is_none());
    assert!(p.provisioned_targets(&p.arn(ACCT, "f")).is_empty());
    // An alias's configuration provisions its version, and goes with the alias.
    p.put_provisioned(ACCT, "f", Some("live"), 1).unwrap();
    let targets = p.provisioned_targets(&p.arn(ACCT, "f"));
    assert_eq!(targets[0].resolved.executed_version, "1");
    p.delete_alias(ACCT, "f", "live").unwrap();
    assert!(
        p.list_provisioned(ACCT, "f", None, None)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn reserved_concurrency_keeps_100_unreserved() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    create(&p, "f");
    assert_eq!(p.put_concurrency(ACCT, "f", 900).unwrap(), 900);
    assert_eq!(
        p.put_concurrency(ACCT, "f", 901).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(p.account_usage(ACCT).unwrap().unreserved_concurrency, 100);
}

#[test]
fn reserved_concurrency_overflow_is_refused_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    create(&p, "f");
    create(&p, "g");
    assert_eq!(p.put_concurrency(ACCT, "g", 5).unwrap(), 5);
    assert_eq!(p.put_concurrency(ACCT, "f", 7).unwrap(), 7);
    // i64::MAX + 5 wrapped the old sum; u32::MAX and u32::MAX + 1 truncated to a u32.
    for n in [
        i64::MAX,
        i64::from(u32::MAX),
        i64::from(u32::MAX) + 1,
        i64::from(u32::MAX) - 4,
        896,
    ] {
        let e = p.put_concurrency(ACCT, "f", n).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter, "{n}");
        assert!(
            e.message.contains("UnreservedConcurrentExecution"),
            "{n}: {e}"
        );
    }
    for n in [-1, i64::MIN] {
        assert_eq!(
            p.put_concurrency(ACCT, "f", n).unwrap_err().kind,
            ErrorKind::Validation
        );
    }
    assert_eq!(p.get_concurrency(ACCT, "f").unwrap(), Some(7));
    assert_eq!(p.account_usage(ACCT).unwrap().unreserved_concurrency, 988);
    // 895 + 5 is exactly the 900 the account can set aside.
    assert_eq!(p.put_concurrency(ACCT, "f", 895).unwrap(), 895);
    assert_eq!(p.account_usage(ACCT).unwrap().unreserved_concurrency, 100);
}

#[test]
fn account_check_uses_checked_arithmetic() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    assert!(p.fits_account(0, 900));
    assert!(p.fits_account(899, 1));
    assert!(!p.fits_account(900, 1));
    assert!(!p.fits_account(0, u32::MAX));
    assert!(!p.fits_account(u64::MAX, 1));
    assert!(!p.fits_account(u64::MAX - 1, u32::MAX));
    // Documents that already hold u32::MAX (as the wrapped check once stored) neither
    // overflow the account's sums nor let it reserve more.
    for name in ["f", "g", "h"] {
        create(&p, name);
    }
    for name in ["f", "g"] {
        let mut turn = p.write().unwrap();
        let mut e = turn.get(&key(name)).unwrap().clone();
        e.reserved_concurrency = Some(u32::MAX);
        turn.insert(key(name), e);
    }
    assert_eq!(p.account_usage(ACCT).unwrap().unreserved_concurrency, 0);
    assert_eq!(
        p.put_concurrency(ACCT, "h", 1).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );
    assert_eq!(p.get_concurrency(ACCT, "h").unwrap(), None);
}

#[test]
fn provisioned_count_out_of_range_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    create(&p, "f");
    p.publish_version(ACCT, "f", None, None, None).unwrap();
    for n in [i64::MAX, i64::from(u32::MAX) + 1, i64::from(u32::MAX), 901] {
        assert_eq!(
            p.put_provisioned(ACCT, "f", Some("1"), n).unwrap_err().kind,
            ErrorKind::InvalidParameter,
            "{n}"
        );
    }
    assert!(p.get_provisioned(ACCT, "f", Some("1")).unwrap().is_none());
}

fn key(name: &str) -> FunctionKey {
    FunctionKey {
        account_id: ACCT.into(),
        name: name.into(),
    }
}

/// A store that can be made to panic in, or to stop inside, its next `apply`.
struct TestStore {
    inner: SqliteStore,
    panic_next: std::sync::atomic::AtomicBool,
    /// When set, the next `apply` says it has started, then waits to be released.
    hold: Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

impl Store for TestStore {
    fn apply(&self, ops: &[Op]) -> std::result::Result<(), updraft_store::StoreError> {
        if self
            .panic_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected store failure");
        }
        let held = self.hold.lock().unwrap().take();
        if let Some((started, release)) = held {
            started.send(()).unwrap();
            release.recv().unwrap();
        }
        self.inner.apply(ops)
    }
    fn get_meta(
        &self,
        key: &str,
    ) -> std::result::Result<Option<String>, updraft_store::StoreError> {
        self.inner.get_meta(key)
    }
    fn snapshot(&self) -> std::result::Result<updraft_store::Snapshot, updraft_store::StoreError> {
        self.inner.snapshot()
    }
}

fn test_plane(dir: &std::path::Path) -> (ControlPlane, Arc<TestStore>) {
    let store = Arc::new(TestStore {
        inner: SqliteStore::open(&dir.join("db.sqlite")).unwrap(),
        panic_next: Default::default(),
        hold: Mutex::new(None),
    });
    let code = CodeStore::open(dir.join("code"), Default::default()).unwrap();
    let p = ControlPlane::open(
        store.clone(),
        code,
        ControlConfig {
            region: "us-east-1".into(),
            account_concurrency: 1000,
        },
    )
    .unwrap();
    (p, store)
}

#[test]
fn a_writer_that_panics_breaks_no_later_call() {
    let d = tempfile::tempdir().unwrap();
    let (p, store) = test_plane(d.path());
    create(&p, "f");
    store
        .panic_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.put_concurrency(ACCT, "f", 10)
    }));
    assert!(
        panicked.is_err(),
        "the injected panic must reach the caller"
    );
    // Nothing of the failed write is visible, and every kind of call still works.
    assert_eq!(p.get_concurrency(ACCT, "f").unwrap(), None);
    assert_eq!(
        p.resolve(ACCT, "f", None, 0.0)
            .unwrap()
            .reserved_concurrency,
        None
    );
    assert_eq!(p.put_concurrency(ACCT, "f", 10).unwrap(), 10);
    create(&p, "g");
    assert_eq!(
        p.resolve(ACCT, "f", None, 0.0)
            .unwrap()
            .reserved_concurrency,
        Some(10)
    );
    // A listener that panics does not poison the listeners or the state either.
    p.subscribe(|_| panic!("injected listener failure"));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.delete_concurrency(ACCT, "f")
    }));
    assert!(panicked.is_err());
    assert_eq!(p.get_concurrency(ACCT, "f").unwrap(), None);
    p.subscribe(|_| {});
    assert!(
        p.list_functions(ACCT, false, None, None)
            .unwrap()
            .items
            .len()
            == 2
    );
    // What was persisted is what memory shows.
    drop(p);
    let p = plane(d.path());
    assert_eq!(p.get_concurrency(ACCT, "f").unwrap(), None);
    assert!(p.resolve(ACCT, "g", None, 0.0).is_ok());
}

#[test]
fn resolve_does_not_wait_for_a_writer_that_is_persisting() {
    let d = tempfile::tempdir().unwrap();
    let (p, store) = test_plane(d.path());
    let p = Arc::new(p);
    create(&p, "f");
    create(&p, "other");
    let (started_tx, started) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    *store.hold.lock().unwrap() = Some((started_tx, release_rx));
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || {
            p.update_configuration(
                ACCT,
                "other",
                ConfigUpdate {
                    timeout: Some(42),
                    ..Default::default()
                },
            )
        })
    };
    // The writer is now inside the store's `apply`, holding its turn.
    started.recv().unwrap();
    // Readers answer from the published state meanwhile. They run on another thread so a
    // regression fails this test instead of hanging it; the bound only catches a reader
    // that waits for the writer (which is released only after it), never a slow one.
    let reader = {
        let p = p.clone();
        std::thread::spawn(move || {
            let f = p.resolve(ACCT, "f", None, 0.0).unwrap();
            let other = p.resolve(ACCT, "other", None, 0.0).unwrap();
            let cfg = p.get_configuration(ACCT, "other", None).unwrap();
            let urls = p.resolve_url("nope");
            (
                f.config.timeout,
                other.config.timeout,
                cfg.timeout,
                urls.is_none(),
            )
        })
    };
    let (done_tx, done) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || done_tx.send(reader.join().unwrap()));
    let seen = done
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("resolve waited for a writer that was persisting");
    // The write is not yet published: readers see the state before it.
    assert_eq!(seen, (3, 3, 3, true));
    release.send(()).unwrap();
    waiter.join().unwrap().unwrap();
    assert_eq!(writer.join().unwrap().unwrap().timeout, 42);
    assert_eq!(
        p.resolve(ACCT, "other", None, 0.0).unwrap().config.timeout,
        42
    );
}

#[test]
fn hostile_zip_leaves_no_function() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    let err = p
        .create_function(
            ACCT,
            CreateFunction {
                name: "evil".into(),
                runtime: Some("python3.12".into()),
                role: "arn:aws:iam::123456789012:role/r".into(),
                handler: Some("app.handler".into()),
                zip: zip_of(&[("../../evil.py", "x")]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidParameter);
    assert_eq!(
        p.get_function(ACCT, "evil", None).unwrap_err().kind,
        ErrorKind::NotFound
    );
}

#[test]
fn url_configs_index_and_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let id;
    {
        let p = plane(d.path());
        create(&p, "f");
        let input = UrlInput {
            auth_type: Some("NONE".into()),
            ..Default::default()
        };
        let v = p.create_url_config(ACCT, "f", None, input.clone()).unwrap();
        id = v.config.url_id.clone();
        assert!(crate::url::is_url_id(&id));
        assert_eq!(v.config.invoke_mode, InvokeMode::Buffered);
        assert_eq!(
            p.create_url_config(ACCT, "f", None, input.clone())
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        // Aliases must exist; versions and $LATEST are not URL qualifiers.
        assert_eq!(
            p.create_url_config(ACCT, "f", Some("live"), input.clone())
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            p.create_url_config(ACCT, "f", Some("1"), input.clone())
                .unwrap_err()
                .kind,
            ErrorKind::Validation
        );
        p.publish_version(ACCT, "f", None, None, None).unwrap();
        p.create_alias(ACCT, "f", "live", "1", None, BTreeMap::new())
            .unwrap();
        let a = p.create_url_config(ACCT, "f", Some("live"), input).unwrap();
        assert_eq!(a.function_arn, format!("{}:live", p.arn(ACCT, "f")));
        let t = p.resolve_url(&a.config.url_id).unwrap();
        assert_eq!(t.qualifier.as_deref(), Some("live"));
        // Deleting the alias deletes its URL.
        p.delete_alias(ACCT, "f", "live").unwrap();
        assert!(p.resolve_url(&a.config.url_id).is_none());
    }
    let p = plane(d.path());
    let t = p.resolve_url(&id).unwrap();
    assert_eq!(t.function_name, "f");
    assert_eq!(t.config.auth_type, UrlAuthType::None);
    let u = p
        .update_url_config(
            ACCT,
            "f",
            None,
            UrlInput {
                auth_type: Some("AWS_IAM".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(u.config.url_id, id, "the url-id is stable across updates");
    assert_eq!(
        p.list_url_configs(ACCT, "f", None, None)
            .unwrap()
            .items
            .len(),
        1
    );
    p.delete_url_config(ACCT, "f", None).unwrap();
    assert!(p.resolve_url(&id).is_none());
    assert_eq!(
        p.delete_url_config(ACCT, "f", None).unwrap_err().kind,
        ErrorKind::NotFound
    );
    p.create_url_config(
        ACCT,
        "f",
        None,
        UrlInput {
            auth_type: Some("NONE".into()),
            ..Default::default()
        },
    )
    .unwrap();
    p.delete_function(ACCT, "f", None).unwrap();
    assert!(p.read().url_index.is_empty());
}

#[test]
fn permissions_add_remove_and_govern_urls() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    create(&p, "f");
    let url = p
        .create_url_config(
            ACCT,
            "f",
            None,
            UrlInput {
                auth_type: Some("NONE".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let public = |p: &ControlPlane| {
        let t = p.resolve_url(&url.config.url_id).unwrap();
        crate::policy::allows(
            &t.policy,
            "lambda:InvokeFunctionUrl",
            None,
            None,
            None,
            Some("NONE"),
        )
    };
    assert!(!public(&p));
    assert_eq!(
        p.get_policy(ACCT, "f", None).unwrap_err().kind,
        ErrorKind::NotFound
    );
    let input = PermissionInput {
        statement_id: "public".into(),
        action: "lambda:InvokeFunctionUrl".into(),
        principal: "*".into(),
        url_auth_type: Some("NONE".into()),
        ..Default::default()
    };
    let s = p.add_permission(ACCT, "f", None, input.clone()).unwrap();
    assert_eq!(s.resource, p.arn(ACCT, "f"));
    assert!(public(&p));
    assert_eq!(
        p.add_permission(ACCT, "f", None, input.clone())
            .unwrap_err()
            .kind,
        ErrorKind::Conflict
    );
    assert_eq!(
        p.add_permission(ACCT, "f", Some("$LATEST"), input.clone())
            .unwrap_err()
            .kind,
        ErrorKind::InvalidParameter
    );
    let stale = PermissionInput {
        statement_id: "other".into(),
        revision_id: Some("stale".into()),
        ..input.clone()
    };
    assert_eq!(
        p.add_permission(ACCT, "f", None, stale).unwrap_err().kind,
        ErrorKind::PreconditionFailed
    );
    let policy = p.get_policy(ACCT, "f", None).unwrap();
    assert_eq!(policy.statements.len(), 1);
    assert_eq!(
        p.remove_permission(ACCT, "f", None, "nope", None)
            .unwrap_err()
            .kind,
        ErrorKind::NotFound
    );
    p.remove_permission(ACCT, "f", None, "public", Some(&policy.revision_id))
        .unwrap();
    assert!(!public(&p));
    assert_eq!(
        p.get_policy(ACCT, "f", None).unwrap_err().kind,
        ErrorKind::NotFound
    );
}
