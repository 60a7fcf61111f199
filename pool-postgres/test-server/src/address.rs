//! How clients reach a server or a PgBouncer: `postgres://` URLs and
//! key=value connection strings, built the same way for both.

use std::fmt::Write as _;

/// The address every test server and test PgBouncer listens on.
pub(crate) const HOST: &str = "127.0.0.1";

/// Who logs in where: the parts of a URL or connection string other than
/// the database.
#[derive(Clone, Copy)]
pub(crate) struct Login<'a> {
    pub(crate) port: u16,
    pub(crate) user: &'a str,
    pub(crate) password: Option<&'a str>,
}

impl Login<'_> {
    /// `postgres://USER[:PASSWORD]@127.0.0.1:PORT/DBNAME`, percent-encoded.
    pub(crate) fn url(self, dbname: &str) -> String {
        let mut url = format!("postgres://{}", percent_encode(self.user));
        if let Some(password) = self.password {
            let _ = write!(url, ":{}", percent_encode(password));
        }
        let _ = write!(url, "@{HOST}:{}/{}", self.port, percent_encode(dbname));
        url
    }

    /// `host=127.0.0.1 port=PORT user=USER dbname=DBNAME [password=...]`,
    /// with values quoted where they need it.
    pub(crate) fn connection_string(self, dbname: &str) -> String {
        let mut out = format!(
            "host={HOST} port={} user={} dbname={}",
            self.port,
            conninfo_value(self.user),
            conninfo_value(dbname)
        );
        if let Some(password) = self.password {
            let _ = write!(out, " password={}", conninfo_value(password));
        }
        out
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Quotes a connection string value if it needs it.
fn conninfo_value(value: &str) -> String {
    let plain = !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain { value.to_owned() } else { format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_urls_and_conninfo_values() {
        assert_eq!(percent_encode("p@ss:w/rd ü"), "p%40ss%3Aw%2Frd%20%C3%BC");
        assert_eq!(percent_encode("plain-1.2_~"), "plain-1.2_~");
        assert_eq!(conninfo_value("plain"), "plain");
        assert_eq!(conninfo_value("it's a \\"), r"'it\'s a \\'");
        assert_eq!(conninfo_value(""), "''");
    }

    #[test]
    fn builds_urls_and_connection_strings() {
        let login = Login { port: 6543, user: "app user", password: Some("p@ss") };
        assert_eq!(login.url("db"), "postgres://app%20user:p%40ss@127.0.0.1:6543/db");
        assert_eq!(
            login.connection_string("db"),
            "host=127.0.0.1 port=6543 user='app user' dbname=db password=p@ss"
        );
        let trusted = Login { password: None, ..login };
        assert_eq!(trusted.url("postgres"), "postgres://app%20user@127.0.0.1:6543/postgres");
    }
}
