//! Taking a pool over several hosts apart: one tokio-postgres config per
//! host, and each host's share of the connection budget.

use std::time::Duration;

use tokio_postgres::config::{Host, TargetSessionAttrs as DriverTarget};

/// The config for host `index` of `config`: everything `config` says, with
/// that host (its port, its `hostaddr`) alone, and no target of the
/// driver's (the pool checks roles itself).
pub(crate) fn one_host(config: &tokio_postgres::Config, index: usize) -> tokio_postgres::Config {
    let mut one = tokio_postgres::Config::new();
    if let Some(user) = config.get_user() {
        one.user(user);
    }
    if let Some(password) = config.get_password() {
        one.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        one.options(options);
    }
    if let Some(name) = config.get_application_name() {
        one.application_name(name);
    }
    one.ssl_mode(config.get_ssl_mode());
    one.ssl_negotiation(config.get_ssl_negotiation());
    match &config.get_hosts()[index] {
        Host::Tcp(name) => one.host(name),
        #[cfg(unix)]
        Host::Unix(path) => one.host_path(path),
    };
    if let Some(addr) = config.get_hostaddrs().get(index) {
        one.hostaddr(*addr);
    }
    one.port(port_of(config, index));
    if let Some(timeout) = config.get_connect_timeout() {
        one.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        one.tcp_user_timeout(*timeout);
    }
    one.keepalives(config.get_keepalives());
    one.keepalives_idle(config.get_keepalives_idle());
    if let Some(interval) = config.get_keepalives_interval() {
        one.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        one.keepalives_retries(retries);
    }
    one.channel_binding(config.get_channel_binding());
    one.target_session_attrs(DriverTarget::Any);
    one
}

/// Host `index`'s port: its own, the one port given for all, or 5432.
pub(crate) fn port_of(config: &tokio_postgres::Config, index: usize) -> u16 {
    match config.get_ports() {
        [] => 5432,
        [one] => *one,
        ports => ports.get(index).copied().unwrap_or(5432),
    }
}

/// `host:port` of host `index`, for names and logs.
pub(crate) fn label(config: &tokio_postgres::Config, index: usize) -> String {
    let port = port_of(config, index);
    match &config.get_hosts()[index] {
        Host::Tcp(name) => format!("{name}:{port}"),
        #[cfg(unix)]
        Host::Unix(path) => format!("{}:{port}", path.display()),
    }
}

/// Each host's share of `budget`, in order: hosts that are `down` get one
/// (enough for their next check), the others share the rest evenly, the
/// first ones taking the remainder; with every host down or every host up,
/// all share evenly. The shares add up to `budget` (which the builder keeps
/// at least the number of hosts).
pub(crate) fn shares(budget: usize, down: &[bool]) -> Vec<usize> {
    let hosts = down.len();
    let down_count = down.iter().filter(|d| **d).count();
    let (sharing, pot) = if down_count == 0 || down_count == hosts {
        (hosts, budget)
    } else {
        (hosts - down_count, budget - down_count)
    };
    let mut given = 0;
    down.iter()
        .map(|&is_down| {
            if is_down && sharing != hosts {
                1
            } else {
                let share = pot / sharing + usize::from(given < pot % sharing);
                given += 1;
                share
            }
        })
        .collect()
}

/// How long a host that failed `failures` checks in a row is left alone:
/// 1 s, doubling, at most `interval`.
pub(crate) fn back_off(failures: u32, interval: Duration) -> Duration {
    let doubled = Duration::from_secs(1).saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_always_add_up_to_the_budget() {
        for budget in 3..40 {
            for down in
                [&[false, false, false][..], &[true, false, false], &[true, true, false], &[true, true, true]]
            {
                let shares = shares(budget, down);
                assert_eq!(shares.iter().sum::<usize>(), budget, "{budget} {down:?}");
                assert!(shares.iter().all(|s| *s >= 1), "{budget} {down:?}: {shares:?}");
            }
        }
        assert_eq!(shares(10, &[false, false]), [5, 5]);
        assert_eq!(shares(11, &[false, false]), [6, 5]);
        assert_eq!(shares(10, &[true, false]), [1, 9]);
    }

    #[test]
    fn a_host_that_keeps_failing_is_checked_less_often() {
        let interval = Duration::from_secs(10);
        assert_eq!(back_off(1, interval), Duration::from_secs(1));
        assert_eq!(back_off(3, interval), Duration::from_secs(4));
        assert_eq!(back_off(60, interval), interval);
    }

    #[test]
    fn each_host_keeps_everything_but_the_other_hosts() {
        let config: tokio_postgres::Config =
            "postgres://app:pw@a:5433,b:5434/db?application_name=svc&connect_timeout=3".parse().unwrap();
        let b = one_host(&config, 1);
        assert_eq!(b.get_hosts(), &[Host::Tcp("b".into())]);
        assert_eq!(b.get_ports(), &[5434]);
        assert_eq!(b.get_user(), Some("app"));
        assert_eq!(b.get_password(), Some(&b"pw"[..]));
        assert_eq!(b.get_dbname(), Some("db"));
        assert_eq!(b.get_application_name(), Some("svc"));
        assert_eq!(b.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(label(&config, 0), "a:5433");
    }
}
