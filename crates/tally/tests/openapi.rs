//! `GET /api/openapi.json` against the real binary.
//!
//! - Every documented operation exists on the server (the reverse holds by
//!   construction: routes are only added together with their doc).
//! - Schemathesis (PyPI) fuzzes the live server from the document and
//!   fails on a 5xx or on any response whose status, content type or body
//!   the document does not allow. It runs when `TALLY_SCHEMATHESIS` names
//!   its `st` executable (`.ci/run` installs it in a virtualenv and sets
//!   the variable); otherwise the test says it skipped.

mod common;

use std::process::Command;

use common::{Server, TempDir};
use serde_json::Value;

fn document(server: &Server) -> Value {
    let r = server.http().get("/api/openapi.json");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn the_document_is_openapi_3_1_and_every_operation_exists() {
    let dir = TempDir::new("openapi-doc");
    let server = Server::start(dir.path(), &[]);
    let doc = document(&server);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/cdrs"), "{paths:?}");
    let http = server.http();
    let mut ids = std::collections::HashSet::new();
    let mut operations = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().expect("path item") {
            operations += 1;
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(op["responses"]["default"].is_object(), "{method} {path}");
            // Without credentials a documented route answers anything but
            // the router's "no such resource" fallback: a bearer route 401,
            // a public one its own answer.
            let concrete = path.replace("{id}", "1").replace("{user_id}", "1");
            let r = http.request(
                &method.to_ascii_uppercase(),
                &concrete,
                "application/json",
                "",
            );
            let fallback = r.status == 404 && r.body.contains("resource not found");
            assert!(
                !fallback && r.status != 405,
                "{method} {path} is documented but not routed: {} {}",
                r.status,
                r.body
            );
            if op["security"] != serde_json::json!([]) {
                assert_eq!(r.status, 401, "{method} {path} without a token");
            }
        }
    }
    assert!(operations >= 6, "{operations} operations");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let Some(st) = std::env::var_os("TALLY_SCHEMATHESIS") else {
        println!(
            "SKIPPED schemathesis_finds_no_server_error_and_no_schema_violation: \
             set TALLY_SCHEMATHESIS to schemathesis' `st` executable (.ci/run does)"
        );
        return;
    };
    let dir = TempDir::new("openapi-st");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    // Something to read: a tenant with a user, so lookups by id can hit.
    let tenant = admin.create_tenant("Schema", "schema.example.com");
    admin.create_user(&tenant, "101", "secret-101-password");
    let token = admin.token.clone().expect("token");
    let url = format!("http://{}/api/openapi.json", server.http);
    let run = || {
        Command::new(&st)
            .args(["run", &url, "--no-color", "--output-truncate", "false"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "30", "--seed", "1", "--workers", "2"])
            .args(["--generation-database", "none", "--request-timeout", "10"])
            .current_dir(dir.path())
            .output()
            .expect("run schemathesis")
    };
    let mut output = run();
    let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    // Schemathesis reports its own crashes (a Python exception while it
    // generates cases, e.g. hypothesis' lambda-source cache raced by two
    // workers: "AST constructor recursion depth mismatch") as "Runtime
    // Error"s, not as findings about the server. Only such a run, with no
    // check failing, is run once more; a failed check never is.
    if !output.status.success() && stdout.contains("Runtime Error") && !stdout.contains("FAILURES")
    {
        eprintln!(
            "schemathesis crashed on its own (Runtime Error, no failed check); running it again"
        );
        output = run();
        stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        output.status,
        server.stderr()
    );
}
