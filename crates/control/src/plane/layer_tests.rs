//! Unit tests of layers in the control plane over a real SQLite store and code store.

use super::*;
use std::io::Write;
use updraft_store::SqliteStore;

const ACCT: &str = "123456789012";
const OTHER: &str = "210987654321";

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

fn publish(
    p: &ControlPlane,
    account: &str,
    name: &str,
    body: &str,
) -> Arc<crate::layer::LayerVersion> {
    p.publish_layer_version(
        account,
        PublishLayer {
            layer_name: name.into(),
            compatible_runtimes: Some(vec!["python3.12".into()]),
            zip: zip_of(&[("python/m.py", body)]),
            ..Default::default()
        },
    )
    .unwrap()
}

fn create(
    p: &ControlPlane,
    account: &str,
    name: &str,
    layers: Vec<String>,
) -> Result<Arc<FunctionConfig>> {
    p.create_function(
        account,
        CreateFunction {
            name: name.into(),
            runtime: Some("python3.12".into()),
            role: "arn:aws:iam::123456789012:role/r".into(),
            handler: Some("app.handler".into()),
            zip: zip_of(&[("app.py", "def handler(e, c):\n    return e\n")]),
            layers: Some(layers),
            ..Default::default()
        },
    )
    .map(|(latest, _)| latest)
}

#[test]
fn versions_are_numbered_listed_deleted_and_reloaded() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    let v1 = publish(&p, ACCT, "libs", "A = 1");
    let v2 = publish(&p, ACCT, "libs", "A = 2");
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(
        v2.version_arn(),
        "arn:aws:lambda:us-east-1:123456789012:layer:libs:2"
    );
    let listed = p
        .list_layer_versions(ACCT, "libs", None, None, None, None)
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    p.delete_layer_version(ACCT, "libs", 2).unwrap();
    p.delete_layer_version(ACCT, "libs", 2).unwrap();
    drop(p);
    let p = plane(d.path());
    assert_eq!(p.get_layer_version(ACCT, "libs", 1).unwrap().code, v1.code);
    assert_eq!(
        p.get_layer_version(ACCT, "libs", 2).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(publish(&p, ACCT, "libs", "A = 3").version, 3);
    let layers = p.list_layers(ACCT, None, None, None, None).unwrap();
    assert_eq!(layers.items.len(), 1);
    assert_eq!(layers.items[0].version, 3);
    assert!(
        p.list_layers(OTHER, None, None, None, None)
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        p.list_layers(ACCT, None, None, None, Some(51))
            .unwrap_err()
            .kind,
        ErrorKind::Validation
    );
}

#[test]
fn functions_check_layers_and_keep_deleted_ones() {
    let d = tempfile::tempdir().unwrap();
    let p = plane(d.path());
    let arns: Vec<String> = (0..6)
        .map(|i| publish(&p, ACCT, &format!("l{i}"), &format!("V = {i}")).version_arn())
        .collect();
    let too_many = create(&p, ACCT, "f", arns.clone()).unwrap_err();
    assert_eq!(too_many.kind, ErrorKind::InvalidParameter);
    assert_eq!(too_many.message, "Cannot reference more than 5 layers.");
    let twice = vec![arns[0].clone(), arns[0].replace(":1", ":2")];
    assert_eq!(
        create(&p, ACCT, "f", twice).unwrap_err().kind,
        ErrorKind::InvalidParameter
    );

    let cfg = create(&p, ACCT, "f", arns[..2].to_vec()).unwrap();
    assert_eq!(
        cfg.layers
            .iter()
            .map(|l| l.arn.as_str())
            .collect::<Vec<_>>(),
        [arns[0].as_str(), arns[1].as_str()]
    );
    let opt = p.resolve(ACCT, "f", None, 0.0).unwrap().opt_dir.unwrap();
    assert_eq!(
        std::fs::read_to_string(opt.join("python/m.py")).unwrap(),
        "V = 1"
    );

    // Deleting the layer version leaves the function's copy, which GC keeps.
    p.delete_layer_version(ACCT, "l0", 1).unwrap();
    let referenced = p.referenced_code().unwrap();
    assert!(referenced.contains(&cfg.layers[0].code.sha256_hex));
    assert!(referenced.contains(&crate::layer::opt_address(&cfg.layers).unwrap()));
    assert_eq!(
        create(&p, ACCT, "g", vec![arns[0].clone()])
            .unwrap_err()
            .message,
        format!("Layer version {} does not exist.", arns[0])
    );

    // Another account needs a statement.
    let denied = create(&p, OTHER, "h", vec![arns[1].clone()]).unwrap_err();
    assert_eq!(denied.kind, ErrorKind::AccessDenied);
    p.add_layer_version_permission(
        ACCT,
        "l1",
        1,
        LayerPermissionInput {
            statement_id: "other".into(),
            action: "lambda:GetLayerVersion".into(),
            principal: OTHER.into(),
            ..Default::default()
        },
    )
    .unwrap();
    create(&p, OTHER, "h", vec![arns[1].clone()]).unwrap();
    assert!(
        p.get_layer_version(OTHER, &arns[1][..arns[1].len() - 2], 1)
            .is_ok()
    );
}
