//! Turns a stored entity and a `fields` selection into Outseta's JSON.
//!
//! # Guarantees
//! - A scalar appears when the level has `*` or names it.
//! - A reference is expanded when named (`Account.*`, `Account.Uid`, or a bare `Account`,
//!   read as `Account.*`) or when the level has `*.<rest>`; otherwise it is `null` under `*`
//!   (deeper references are returned as null, lists included) and absent without `*`.
//! - `_objectType` is added to top-level objects (list items and single responses).
//! - Depth is bounded by the selection itself, so cycles (Person -> PersonAccount -> Person)
//!   cannot recurse forever.

use serde_json::{Map, Value};

use super::model::{Entity, Prop};
use super::query::Fields;
use super::store::Store;

/// Renders a top-level object.
pub fn render(store: &Store, e: &Entity, fields: &Fields) -> Value {
    let mut obj = render_inner(store, e, fields);
    obj.insert("_objectType".into(), Value::String(e.kind.name().into()));
    Value::Object(obj)
}

fn render_inner(store: &Store, e: &Entity, fields: &Fields) -> Map<String, Value> {
    let star_all = Fields::star();
    let fields = if fields.is_leaf() { &star_all } else { fields };
    let mut out = Map::new();
    for (name, prop) in e.kind.props() {
        match prop {
            Prop::Scalar => {
                if fields.star || fields.child(name).is_some() {
                    out.insert(name.into(), e.value(name).clone());
                }
            }
            Prop::One(kind) => {
                if let Some(sub) = fields.expansion(name) {
                    let v = e
                        .one(name)
                        .and_then(|u| store.get_kind(kind, u))
                        .map(|t| Value::Object(render_inner(store, t, sub)))
                        .unwrap_or(Value::Null);
                    out.insert(name.into(), v);
                } else if fields.star {
                    out.insert(name.into(), Value::Null);
                }
            }
            Prop::Many(kind) => {
                if let Some(sub) = fields.expansion(name) {
                    let items = e
                        .many(name)
                        .iter()
                        .filter_map(|u| store.get_kind(kind, u))
                        .map(|t| Value::Object(render_inner(store, t, sub)))
                        .collect();
                    out.insert(name.into(), Value::Array(items));
                } else if fields.star {
                    out.insert(name.into(), Value::Null);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;
    use serde_json::json;

    fn alice(store: &Store) -> &Entity {
        store.person_by_email("alice@example.com").unwrap()
    }

    #[test]
    fn default_selection_expands_one_level_and_nulls_deeper_references() {
        let s = seed::store();
        let v = render(&s, alice(&s), &Fields::default_selection());
        assert_eq!(v["_objectType"], "Person");
        assert_eq!(v["Email"], "alice@example.com");
        let pa = &v["PersonAccount"][0];
        assert_eq!(pa["IsPrimary"], true);
        assert!(pa["Person"].is_null());
        assert!(pa["Account"].is_null());
        assert!(pa.get("_objectType").is_none());
        assert_eq!(v["DealPeople"], json!([]));
        assert!(v["Account"].is_null());
        assert!(v.get("Password").is_none());
    }

    #[test]
    fn named_fields_only_and_deep_paths() {
        let s = seed::store();
        let v = render(
            &s,
            alice(&s),
            &Fields::parse("Uid,PersonAccount.Account.CurrentSubscription.Plan.Uid"),
        );
        let obj = v.as_object().unwrap();
        let mut keys: Vec<_> = obj.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["PersonAccount", "Uid", "_objectType"]);
        let plan = &v["PersonAccount"][0]["Account"]["CurrentSubscription"]["Plan"];
        assert_eq!(plan.as_object().unwrap().len(), 1);
        assert!(plan["Uid"].is_string());
    }

    #[test]
    fn star_nulls_every_reference_and_bare_reference_means_star() {
        let s = seed::store();
        let v = render(&s, alice(&s), &Fields::parse("*"));
        assert!(v["PersonAccount"].is_null());
        assert_eq!(v["FirstName"], "Alice");
        let v = render(&s, alice(&s), &Fields::parse("PersonAccount"));
        assert_eq!(v["PersonAccount"][0]["IsPrimary"], true);
        assert!(v["PersonAccount"][0]["Person"].is_null());
        assert!(v.get("Email").is_none());
    }
}
