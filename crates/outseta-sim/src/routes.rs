//! The route table of the simulated domain and path matching.
//!
//! # Guarantees
//! - Literal segments match case-insensitively and one trailing `/` is ignored, as ASP.NET
//!   routing does (`/API/V1/CRM/People/` is `/api/v1/crm/people`).
//! - `{param}` captures one non-empty segment, percent-decoded (every capture, in order).
//! - A known path with another method is 405; anything else is 404.
//! - The set of templates is fixed, so per-template statistics stay bounded.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteId {
    Jwks,
    Tokens,
    Profile,
    ProfilePassword,
    People,
    Person,
    Accounts,
    Account,
    Plans,
    Plan,
    PlanFamilies,
    PlanFamily,
    Subscriptions,
    Subscription,
    Invoices,
    Invoice,
    Transactions,
    Cases,
    Case,
    CaseClientResponse,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed (any sent are ignored, except that an API key is rate limited).
    Public,
    /// The token endpoint: anonymous password grant, or impersonation with the API key.
    Token,
    /// The user's own bearer token only (`/profile`).
    Bearer,
    /// The API key only; a bearer token is 401.
    ApiKey,
    /// The API key (everything), or a bearer token scoped to the caller's own accounts
    /// (Outseta's behaviour for `GET /billing/subscriptions` and `GET /billing/invoices`).
    ApiKeyOrScopedBearer,
}

#[derive(Debug)]
pub struct Route {
    pub id: RouteId,
    pub template: &'static str,
    pub methods: &'static [&'static str],
    pub access: Access,
}

const fn r(
    id: RouteId,
    template: &'static str,
    methods: &'static [&'static str],
    access: Access,
) -> Route {
    Route {
        id,
        template,
        methods,
        access,
    }
}

use Access::*;
use RouteId as R;

pub static ROUTES: &[Route] = &[
    r(R::Jwks, "/.well-known/jwks", &["GET"], Public),
    r(R::Tokens, "/tokens", &["POST"], Token),
    r(R::Tokens, "/api/v1/tokens", &["POST"], Token),
    r(R::Profile, "/api/v1/profile", &["GET", "PUT"], Bearer),
    r(
        R::ProfilePassword,
        "/api/v1/profile/password",
        &["PUT"],
        Bearer,
    ),
    r(R::People, "/api/v1/crm/people", &["GET"], ApiKey),
    r(
        R::Person,
        "/api/v1/crm/people/{uid}",
        &["GET", "PUT"],
        ApiKey,
    ),
    r(R::Accounts, "/api/v1/crm/accounts", &["GET"], ApiKey),
    r(
        R::Account,
        "/api/v1/crm/accounts/{uid}",
        &["GET", "PUT"],
        ApiKey,
    ),
    r(R::Plans, "/api/v1/billing/plans", &["GET"], Public),
    r(R::Plan, "/api/v1/billing/plans/{uid}", &["GET"], Public),
    r(
        R::PlanFamilies,
        "/api/v1/billing/planfamilies",
        &["GET"],
        Public,
    ),
    r(
        R::PlanFamily,
        "/api/v1/billing/planfamilies/{uid}",
        &["GET"],
        Public,
    ),
    r(
        R::Subscriptions,
        "/api/v1/billing/subscriptions",
        &["GET"],
        ApiKeyOrScopedBearer,
    ),
    r(
        R::Subscription,
        "/api/v1/billing/subscriptions/{uid}",
        &["GET"],
        ApiKey,
    ),
    r(
        R::Invoices,
        "/api/v1/billing/invoices",
        &["GET"],
        ApiKeyOrScopedBearer,
    ),
    r(
        R::Invoice,
        "/api/v1/billing/invoices/{uid}",
        &["GET"],
        ApiKey,
    ),
    r(
        R::Transactions,
        "/api/v1/billing/transactions/{accountUid}",
        &["GET"],
        ApiKey,
    ),
    r(R::Cases, "/api/v1/support/cases", &["GET", "POST"], ApiKey),
    r(R::Case, "/api/v1/support/cases/{uid}", &["GET"], ApiKey),
    r(
        R::CaseClientResponse,
        "/api/v1/support/cases/{uid}/clientresponse/{comment}",
        &["POST"],
        ApiKey,
    ),
];

#[derive(Debug)]
pub enum Resolved {
    Found {
        route: &'static Route,
        /// The `{param}` captures, in template order.
        params: Vec<String>,
    },
    MethodNotAllowed(&'static Route),
    NotFound,
}

fn match_path(template: &str, path: &str) -> Option<Vec<String>> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let mut params = Vec::new();
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) => {
                if ts.starts_with('{') {
                    if ps.is_empty() {
                        return None;
                    }
                    params.push(percent_decode_str(ps).decode_utf8_lossy().into_owned());
                } else if !ts.eq_ignore_ascii_case(ps) {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

pub fn resolve(method: &str, path: &str) -> Resolved {
    let mut wrong_method = None;
    for route in ROUTES {
        if let Some(params) = match_path(route.template, path) {
            if route.methods.contains(&method) {
                return Resolved::Found { route, params };
            }
            wrong_method.get_or_insert(route);
        }
    }
    match wrong_method {
        Some(route) => Resolved::MethodNotAllowed(route),
        None => Resolved::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: &str, path: &str) -> Option<(RouteId, Option<String>)> {
        match resolve(method, path) {
            Resolved::Found { route, params } => Some((route.id, params.first().cloned())),
            _ => None,
        }
    }

    #[test]
    fn matches_like_asp_net() {
        assert_eq!(found("GET", "/api/v1/crm/people"), Some((R::People, None)));
        assert_eq!(found("GET", "/API/V1/CRM/People/"), Some((R::People, None)));
        assert_eq!(
            found("GET", "/api/v1/crm/people/DQ2DyknW"),
            Some((R::Person, Some("DQ2DyknW".into())))
        );
        assert_eq!(found("POST", "/tokens"), Some((R::Tokens, None)));
        assert_eq!(
            found("PUT", "/api/v1/profile/password"),
            Some((R::ProfilePassword, None))
        );
        assert!(matches!(
            resolve("DELETE", "/api/v1/crm/people/x"),
            Resolved::MethodNotAllowed(_)
        ));
        assert!(matches!(
            resolve("GET", "/api/v1/crm/people/x/y"),
            Resolved::NotFound
        ));
        assert!(matches!(
            resolve("GET", "/api/v1/crm/people//"),
            Resolved::NotFound
        ));
        assert!(matches!(resolve("GET", "/"), Resolved::NotFound));
    }

    #[test]
    fn every_capture_in_template_order() {
        match resolve(
            "POST",
            "/api/v1/support/cases/C1/clientresponse/thanks%20a%20lot",
        ) {
            Resolved::Found { route, params } => {
                assert_eq!(route.id, R::CaseClientResponse);
                assert_eq!(params, ["C1", "thanks a lot"]);
            }
            _ => panic!("no route"),
        }
    }
}
