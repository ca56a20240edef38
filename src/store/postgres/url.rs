//! PostgreSQL store URLs, and keeping their passwords out of every message.
//!
//! A `postgres://user:secret@host/db` URL reaches tuneflow through `--store` or
//! `TUNEFLOW_STORE`, and from there it would flow into error messages, logs and `Debug`
//! output. [`PostgresUrl`] holds it so that the only way to see the password is
//! [`PostgresUrl::expose`], which the connection code alone calls; `Display` and `Debug` show
//! the URL with its password replaced by `***`.

use std::fmt;
use std::str::FromStr;

use sqlx_postgres::PgConnectOptions;

use crate::store::StoreError;

/// A `postgres://` or `postgresql://` URL whose password never shows in output.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Checks `url` and keeps it; the error names what is wrong without the password.
    pub fn parse(url: &str) -> Result<PostgresUrl, StoreError> {
        let url = PostgresUrl(url.to_string());
        url.connect_options()?;
        Ok(url)
    }

    /// The URL as given, password included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (in the user info or a `password=` parameter) replaced by
    /// `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// The driver's connect options read from the URL.
    pub(super) fn connect_options(&self) -> Result<PgConnectOptions, StoreError> {
        PgConnectOptions::from_str(&self.0).map_err(|error| {
            // The driver's message may quote parts of the URL: redact it too.
            let reason = redact(&error.to_string());
            StoreError::Url(format!(
                "{}: not a valid PostgreSQL URL ({reason}); write postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                self.redacted()
            ))
        })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&self.redacted())
            .finish()
    }
}

/// Replaces the password of every `scheme://user:password@` and every `password=value`
/// query parameter in `text` with `***`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?' or '#' (or whitespace, in a message).
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let user_info = &authority[..at];
                match user_info.find(':') {
                    Some(colon) => {
                        out.push_str(&user_info[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(user_info),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    redact_parameter(&out, "password=")
}

/// Replaces the value of every `name` (e.g. `password=`) parameter with `***`.
fn redact_parameter(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(name) {
        let (head, tail) = rest.split_at(start + name.len());
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '&' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        if end > 0 {
            out.push_str("***");
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://alice:s3cr:et@db.example:5432/tuneflow"),
            "postgres://alice:***@db.example:5432/tuneflow"
        );
        assert_eq!(
            redact("postgresql://alice@db/tuneflow?sslmode=disable&password=hunter2"),
            "postgresql://alice@db/tuneflow?sslmode=disable&password=***"
        );
        assert_eq!(
            redact("cannot reach postgres://a:b@h/d and postgres://c@h/d"),
            "cannot reach postgres://a:***@h/d and postgres://c@h/d"
        );
        assert_eq!(redact("postgres://host/db"), "postgres://host/db");
        assert_eq!(
            redact("postgres://u:p@w@host/db"),
            "postgres://u:***@host/db",
            "the password may hold an @"
        );
    }

    #[test]
    fn parse_keeps_the_url_and_never_shows_the_password() {
        let url = PostgresUrl::parse("postgres://alice:hunter2@127.0.0.1:5432/test")
            .expect("a valid URL");
        assert_eq!(url.expose(), "postgres://alice:hunter2@127.0.0.1:5432/test");
        assert_eq!(url.to_string(), "postgres://alice:***@127.0.0.1:5432/test");
        assert!(!format!("{url:?}").contains("hunter2"));

        let error = PostgresUrl::parse("postgres://alice:hunter2@host:notaport/db")
            .expect_err("the port is not a number");
        let message = error.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("postgres://alice:***@host"), "{message}");
    }

    #[test]
    fn store_locations_take_both_schemes_and_keep_logs_local() {
        use crate::store::StoreLocation;
        for url in [
            "postgres://alice:hunter2@db.example/tuneflow",
            "postgresql://alice@db.example:6432/tuneflow?sslmode=disable",
        ] {
            let location = StoreLocation::parse(url).expect("a PostgreSQL URL");
            assert!(
                matches!(&location, StoreLocation::Postgres(parsed) if parsed.expose() == url),
                "{location:?}"
            );
            assert!(!format!("{location:?}").contains("hunter2"));
            assert_eq!(
                location.logs_dir(),
                std::path::Path::new(crate::store::postgres::LOGS_DIR)
            );
        }
        let other = StoreLocation::parse("mysql://alice:hunter2@db/tuneflow")
            .expect_err("not a store tuneflow has");
        assert!(!other.to_string().contains("hunter2"), "{other}");
    }
}
