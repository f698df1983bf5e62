//! Who a request counts against: the token's `sub`, else the client's IP address.
//!
//! Used by the per-user limit and by the budget's fair queue, so "one user" means the same
//! thing to both.

use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserKey {
    /// An authenticated caller.
    Sub(Arc<str>),
    /// An anonymous caller, by peer address.
    Ip(IpAddr),
    /// Neither is known (only in embedded use without a peer address).
    Unknown,
}

impl UserKey {
    /// The `sub` when there is one, else the client's address.
    pub fn of(sub: Option<Arc<str>>, ip: Option<IpAddr>) -> Self {
        match (sub, ip) {
            (Some(sub), _) => Self::Sub(sub),
            (None, Some(ip)) => Self::Ip(ip),
            (None, None) => Self::Unknown,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self, Self::Sub(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_first_then_ip() {
        let ip: IpAddr = [10, 0, 0, 7].into();
        assert_eq!(
            UserKey::of(Some("P1".into()), Some(ip)),
            UserKey::Sub("P1".into())
        );
        assert_eq!(UserKey::of(None, Some(ip)), UserKey::Ip(ip));
        assert_eq!(UserKey::of(None, None), UserKey::Unknown);
        assert!(UserKey::Sub("x".into()).is_authenticated());
    }
}
