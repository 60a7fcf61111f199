//! TLS against a real server with certificates made for the test: every
//! `sslmode`, a wrong CA, a wrong host name.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pool_postgres::PgPool;
use pool_postgres_test_server::TestServer;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA (`name.pem`, `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A server certificate for IP 127.0.0.1 only (not the name `localhost`), signed by `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// A server with TLS on, and the directory holding `ca.pem` (its CA) and
/// `other-ca.pem` (a CA that signed nothing of it).
struct TlsServer {
    server: TestServer,
    certs: PathBuf,
}

async fn tls_server() -> TlsServer {
    let server = common::server();
    let certs = server.data_dir().parent().unwrap().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    make_ca(&certs, "ca");
    make_ca(&certs, "other-ca");
    make_server_cert(&certs, "ca");
    // The server reads its key as its own user, and refuses a key others can read.
    let owner = std::fs::metadata(server.data_dir()).unwrap();
    for file in ["server.pem", "server.key"] {
        let target = server.data_dir().join(file);
        std::fs::copy(certs.join(file), &target).unwrap();
        std::os::unix::fs::chown(&target, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let admin = common::monitor(&server).await;
    // One by one: ALTER SYSTEM refuses to run inside the implicit
    // transaction of a multi-statement query.
    for sql in [
        "ALTER SYSTEM SET ssl_cert_file = 'server.pem'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "ALTER SYSTEM SET ssl = on",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    // Reloading is asynchronous: wait until new sessions see it.
    for _ in 0..200 {
        let check = common::monitor(&server).await;
        if check.query_one("SHOW ssl", &[]).await.unwrap().get::<_, String>(0) == "on" {
            return TlsServer { server, certs };
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the server did not turn TLS on");
}

impl TlsServer {
    fn url(&self, host: &str, params: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{params}", self.server.port())
    }

    fn ca(&self, name: &str) -> String {
        self.certs.join(format!("{name}.pem")).display().to_string()
    }
}

/// Whether the pool's connection is encrypted, from the server's side.
async fn encrypted(pool: &PgPool) -> Result<bool, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let row =
        client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    Ok(row.get(0))
}

#[tokio::test]
async fn every_sslmode_behaves_as_libpq_documents() {
    let tls = tls_server().await;
    let ca = tls.ca("ca");
    for (host, params, expect) in [
        ("127.0.0.1", "sslmode=disable".to_owned(), Ok(false)),
        ("127.0.0.1", "sslmode=prefer".to_owned(), Ok(true)),
        ("127.0.0.1", String::new(), Ok(true)),
        ("127.0.0.1", "sslmode=require".to_owned(), Ok(true)),
        ("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}"), Ok(true)),
        ("127.0.0.1", format!("sslmode=verify-full&sslrootcert={ca}"), Ok(true)),
        // The certificate names 127.0.0.1, not localhost: only the name check fails.
        ("localhost", format!("sslmode=verify-ca&sslrootcert={ca}"), Ok(true)),
        ("localhost", format!("sslmode=verify-full&sslrootcert={ca}"), Err("certificate")),
    ] {
        let pool = PgPool::from_url(&tls.url(host, &format!("pool_timeout=5&{params}"))).unwrap();
        match (encrypted(&pool).await, expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{host} {params}"),
            (Err(e), Err(needle)) => assert!(e.contains(needle), "{host} {params}: {e}"),
            (got, want) => panic!("{host} {params}: got {got:?}, expected {want:?}"),
        }
    }
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let tls = tls_server().await;
    let other = tls.ca("other-ca");
    for mode in ["verify-ca", "verify-full"] {
        let pool = PgPool::from_url(
            &tls.url("127.0.0.1", &format!("pool_timeout=5&sslmode={mode}&sslrootcert={other}")),
        )
        .unwrap();
        let err = encrypted(&pool).await.expect_err("an unknown issuer must be refused");
        assert!(err.contains("certificate") || err.contains("UnknownIssuer"), "{mode}: {err}");
    }
}

#[tokio::test]
async fn require_refuses_a_server_without_tls() {
    let server = common::server();
    let pool = common::pool(&server, "pool_timeout=5&sslmode=require");
    let err = encrypted(&pool).await.expect_err("no TLS on this server");
    assert!(err.to_lowercase().contains("tls") || err.contains("ssl"), "{err}");
}

#[test]
fn verify_modes_without_a_root_certificate_are_a_clear_error() {
    let err = PgPool::from_url("postgres://h/db?sslmode=verify-full").unwrap_err();
    assert_eq!(err.parameter(), "sslrootcert", "{err}");
    let err =
        PgPool::from_url("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
