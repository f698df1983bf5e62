//! Who a request counts against: the token's `sub`, else the client's IP address.
//!
//! Used by the per-user limit and by the budget's fair queue, so "one user" means the same
//! thing to both.

use std::net::IpAddr;
use std::sync::Arc;

use crate::proxy::context::{Caller, ClientAddr};

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
    pub fn of(caller: Option<&Caller>, addr: Option<&ClientAddr>) -> Self {
        match (caller.and_then(|c| c.principal.sub().cloned()), addr) {
            (Some(sub), _) => Self::Sub(sub),
            (None, Some(a)) => Self::Ip(a.0.ip()),
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
    use crate::auth::Principal;
    use std::net::SocketAddr;

    #[test]
    fn sub_first_then_ip() {
        let addr = ClientAddr(SocketAddr::from(([10, 0, 0, 7], 5555)));
        let anon = Caller {
            principal: Arc::new(Principal::anonymous()),
            bearer: None,
        };
        let p = Principal {
            claims: crate::rules::expr::claims_value(&serde_json::json!({"sub": "P1"})),
            ..Principal::anonymous()
        };
        let user = Caller {
            principal: Arc::new(p),
            bearer: None,
        };
        assert_eq!(
            UserKey::of(Some(&user), Some(&addr)),
            UserKey::Sub("P1".into())
        );
        assert_eq!(
            UserKey::of(Some(&anon), Some(&addr)),
            UserKey::Ip([10, 0, 0, 7].into())
        );
        assert_eq!(UserKey::of(None, None), UserKey::Unknown);
        assert!(UserKey::Sub("x".into()).is_authenticated());
    }
}
