//! Writes: partial updates of people and accounts (also `PUT /profile`), password changes,
//! and new support cases, validated the way Outseta reports it.
//!
//! # Guarantees
//! - A write either applies completely or not at all; a refused write returns the entity as
//!   it would have been plus the list of validation errors (Outseta's 400 shape).
//! - Only the listed writable properties change; read-only or unknown keys are ignored
//!   (Uid, Created, references such as `PersonAccount`, derived values such as `FullName`).
//! - Keys are matched case-insensitively. `Updated` is set on success; `FullName` is derived.
//! - Creates stop at [`super::store::MAX_CREATED`].

use serde_json::{Map, Value};

use super::model::{Entity, Kind, Link};
use super::seed::full_name;
use super::store::{self, Store};

/// One entry of `ValidationErrors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
    pub property: &'static str,
}

impl FieldError {
    fn new(property: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "outsetaError",
            message: message.into(),
            property,
        }
    }
}

#[derive(Debug)]
pub enum WriteError {
    NotFound,
    /// The entity as it would have been, and what is wrong with it.
    Invalid(Box<Entity>, Vec<FieldError>),
}

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Object,
}

const PERSON_WRITABLE: &[(&str, Ty)] = &[
    ("Email", Ty::Str),
    ("FirstName", Ty::Str),
    ("LastName", Ty::Str),
    ("MailingAddress", Ty::Object),
    ("PhoneMobile", Ty::Str),
    ("PhoneWork", Ty::Str),
    ("Title", Ty::Str),
    ("Timezone", Ty::Str),
    ("Language", Ty::Str),
    ("ProfileImageS3Url", Ty::Str),
];

const ACCOUNT_WRITABLE: &[(&str, Ty)] = &[
    ("Name", Ty::Str),
    ("ClientIdentifier", Ty::Str),
    ("IsDemo", Ty::Bool),
    ("BillingAddress", Ty::Object),
    ("MailingAddress", Ty::Object),
    ("DomainName", Ty::Str),
    ("AccountSpecificPageUrl1", Ty::Str),
    ("AccountSpecificPageUrl2", Ty::Str),
    ("AccountSpecificPageUrl3", Ty::Str),
    ("AccountSpecificPageUrl4", Ty::Str),
    ("AccountSpecificPageUrl5", Ty::Str),
];

fn writable(kind: Kind) -> &'static [(&'static str, Ty)] {
    match kind {
        Kind::Person => PERSON_WRITABLE,
        Kind::Account => ACCOUNT_WRITABLE,
        _ => &[],
    }
}

fn type_ok(ty: Ty, v: &Value) -> bool {
    matches!(
        (ty, v),
        (_, Value::Null)
            | (Ty::Str, Value::String(_))
            | (Ty::Bool, Value::Bool(_))
            | (Ty::Object, Value::Object(_))
    )
}

/// A plausible e-mail address (what Outseta's `EmailAddress` attribute accepts, roughly).
pub fn is_email(s: &str) -> bool {
    let mut parts = s.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        _ => false,
    }
}

fn validate(store: &Store, e: &Entity) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match e.kind {
        Kind::Person => {
            let email = e.str("Email").unwrap_or("");
            if !is_email(email) {
                errors.push(FieldError::new(
                    "Email",
                    "The Email field is not a valid e-mail address.",
                ));
            } else if store
                .person_by_email(email)
                .is_some_and(|other| other.uid != e.uid)
            {
                errors.push(FieldError::new(
                    "Email",
                    "A person with this email address already exists.",
                ));
            }
        }
        Kind::Account if e.str("Name").is_none_or(|n| n.trim().is_empty()) => {
            errors.push(FieldError::new("Name", "The Name field is required."));
        }
        _ => {}
    }
    errors
}

/// Partially updates a Person or an Account with the keys of `body`.
pub fn update(
    store: &mut Store,
    kind: Kind,
    uid: &str,
    body: &Map<String, Value>,
) -> Result<(), WriteError> {
    let mut next = store
        .get_kind(kind, uid)
        .cloned()
        .ok_or(WriteError::NotFound)?;
    let mut errors = Vec::new();
    for (key, value) in body {
        let Some((name, ty)) = writable(kind)
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(key))
            .copied()
        else {
            continue;
        };
        if type_ok(ty, value) {
            next.values.insert(name, value.clone());
        } else {
            errors.push(FieldError::new(
                name,
                format!("The value is not valid for {name}."),
            ));
        }
    }
    if kind == Kind::Person {
        let name = full_name(
            next.value("FirstName"),
            next.value("LastName"),
            next.value("Email"),
        );
        next.values.insert("FullName", name);
    }
    errors.extend(validate(store, &next));
    if !errors.is_empty() {
        return Err(WriteError::Invalid(Box::new(next), errors));
    }
    next.values.insert("Updated", Value::String(store::now()));
    store.insert(next);
    Ok(())
}

/// `PUT /profile/password`: `{ExistingPassword, NewPassword}`.
pub fn change_password(
    store: &mut Store,
    person_uid: &str,
    body: &Map<String, Value>,
) -> Result<(), WriteError> {
    let person = store
        .get_kind(Kind::Person, person_uid)
        .cloned()
        .ok_or(WriteError::NotFound)?;
    let field = |name: &str| {
        body.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let existing = field("ExistingPassword");
    let new = field("NewPassword");
    if !store.password_matches(person_uid, &existing) {
        return Err(WriteError::Invalid(
            Box::new(person),
            vec![FieldError {
                code: "currentPasswordMismatch",
                message: "The current password does not match".into(),
                property: "Password",
            }],
        ));
    }
    if new.is_empty() {
        return Err(WriteError::Invalid(
            Box::new(person),
            vec![FieldError::new("Password", "The new password is required.")],
        ));
    }
    store.set_password(person_uid, &new);
    Ok(())
}

fn get_ci<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `POST /support/cases`: `{Subject, Body, FromPerson: {Uid | Email}, Source}`; returns the
/// new case's Uid.
pub fn create_case(store: &mut Store, body: &Map<String, Value>) -> Result<String, WriteError> {
    let now = store::now();
    let mut errors = Vec::new();
    let from = get_ci(body, "FromPerson").and_then(Value::as_object);
    let person = from.and_then(|f| {
        let by_uid = get_ci(f, "Uid")
            .and_then(Value::as_str)
            .and_then(|u| store.get_kind(Kind::Person, u));
        by_uid.or_else(|| {
            get_ci(f, "Email")
                .and_then(Value::as_str)
                .and_then(|e| store.person_by_email(e))
        })
    });
    let person_uid = person.map(|p| p.uid.clone());
    if from.is_none() {
        errors.push(FieldError::new(
            "FromPerson",
            "The FromPerson field is required.",
        ));
    } else if person_uid.is_none() {
        errors.push(FieldError::new(
            "FromPerson",
            "The FromPerson does not match any person.",
        ));
    }
    let text = |name: &str| get_ci(body, name).cloned().unwrap_or(Value::Null);
    let subject = text("Subject");
    if subject.as_str().is_none_or(|s| s.trim().is_empty()) {
        errors.push(FieldError::new("Subject", "The Subject field is required."));
    }
    let source = match get_ci(body, "Source") {
        None | Some(Value::Null) => Value::from(1),
        Some(v) => v.clone(),
    };
    if !source.as_i64().is_some_and(|s| (1..=5).contains(&s)) {
        errors.push(FieldError::new(
            "Source",
            "The field Source must be between 1 and 5.",
        ));
    }
    let mut case = Entity::new(Kind::Case, "", &now)
        .with("Uid", Value::Null)
        .with("SubmittedDateTime", Value::String(now.clone()))
        .with_one("FromPerson", person_uid.as_deref())
        .with("AssignedToPersonClientIdentifier", Value::Null)
        .with("Subject", subject)
        .with("Body", text("Body"))
        .with("UserAgent", Value::Null)
        .with("Status", Value::from(1))
        .with("Source", source)
        .with("IsOnline", Value::Bool(false))
        .with_one("LastCaseHistory", None)
        .with("Participants", Value::Null)
        .with("RecaptchaToken", Value::Null);
    if !errors.is_empty() {
        return Err(WriteError::Invalid(Box::new(case), errors));
    }
    let Some(uid) = store.next_created_uid(Kind::Case) else {
        return Err(store_full(case));
    };
    case.uid = uid.clone();
    case.values.insert("Uid", Value::String(uid.clone()));
    store.insert(case);
    Ok(uid)
}

/// The refusal of a create once the store holds [`store::MAX_CREATED`] created entities.
fn store_full(shown: Entity) -> WriteError {
    WriteError::Invalid(
        Box::new(shown),
        vec![FieldError::new(
            "Uid",
            format!(
                "The simulator stores at most {} created entities.",
                store::MAX_CREATED
            ),
        )],
    )
}

/// The case's opener replies (Outseta's `POST …/clientresponse/{comment}`): a `CaseHistory`
/// with the comment joins the case, becomes its `LastCaseHistory`, and the case is open again
/// (Status 1). The history's shape is the simulator's choice: Outseta does not document it.
pub fn client_response(store: &mut Store, case_uid: &str, comment: &str) -> Result<(), WriteError> {
    let Some(case) = store.get_kind(Kind::Case, case_uid).cloned() else {
        return Err(WriteError::NotFound);
    };
    if comment.trim().is_empty() {
        return Err(WriteError::Invalid(
            Box::new(case),
            vec![FieldError::new("Comment", "The Comment field is required.")],
        ));
    }
    let now = store::now();
    let Some(uid) = store.next_created_uid(Kind::CaseHistory) else {
        return Err(store_full(case));
    };
    let history = Entity::new(Kind::CaseHistory, &uid, &now)
        .with_one("Case", Some(case_uid))
        .with("Comment", Value::String(comment.to_owned()))
        .with("Type", Value::from(2))
        .with("AgentName", Value::Null);
    store.insert(history);
    if let Some(case) = store.get_mut(case_uid) {
        case.push_many("CaseHistories", &uid);
        case.links.insert("LastCaseHistory", Link::One(Some(uid)));
        case.values.insert("Status", Value::from(1));
        case.values.insert("Updated", Value::String(now));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed;
    use serde_json::json;

    #[test]
    fn a_client_response_joins_the_case() {
        let mut s = seed::store();
        let case = s.all(Kind::Case)[0].uid.clone();
        client_response(&mut s, &case, "thanks").unwrap();
        let c = s.get_kind(Kind::Case, &case).unwrap();
        let last = c.one("LastCaseHistory").unwrap().to_owned();
        let h = s.get_kind(Kind::CaseHistory, &last).unwrap();
        assert_eq!(h.str("Comment"), Some("thanks"));
        assert_eq!(h.one("Case"), Some(case.as_str()));
        assert!(matches!(
            client_response(&mut s, &case, " "),
            Err(WriteError::Invalid(..))
        ));
        assert!(matches!(
            client_response(&mut s, "nope", "x"),
            Err(WriteError::NotFound)
        ));
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn update_applies_writable_keys_only() {
        let mut s = seed::store();
        let uid = seed::person_uid("bob");
        update(
            &mut s,
            Kind::Person,
            &uid,
            &obj(json!({"firstname": "Robert", "Uid": "XXXXXXXX", "FullName": "x", "Foo": 1})),
        )
        .unwrap();
        let bob = s.get(&uid).unwrap();
        assert_eq!(bob.value("FirstName"), "Robert");
        assert_eq!(bob.value("FullName"), "Robert Brown");
        assert_eq!(bob.uid, uid);
    }

    #[test]
    fn invalid_updates_change_nothing() {
        let mut s = seed::store();
        let uid = seed::person_uid("bob");
        let err = update(
            &mut s,
            Kind::Person,
            &uid,
            &obj(json!({"Email": "", "FirstName": "Zed"})),
        )
        .unwrap_err();
        let WriteError::Invalid(e, errs) = err else {
            panic!("expected a validation error")
        };
        assert_eq!(e.value("FirstName"), "Zed");
        assert_eq!(errs[0].property, "Email");
        assert_eq!(s.get(&uid).unwrap().value("FirstName"), "Bob");
        let dup = update(
            &mut s,
            Kind::Person,
            &uid,
            &obj(json!({"Email": "ALICE@example.com"})),
        );
        assert!(matches!(dup, Err(WriteError::Invalid(..))));
        let ty = update(&mut s, Kind::Person, &uid, &obj(json!({"FirstName": 5})));
        assert!(matches!(ty, Err(WriteError::Invalid(..))));
    }

    #[test]
    fn password_change_checks_the_existing_one() {
        let mut s = seed::store();
        let uid = seed::person_uid("dan");
        let bad = change_password(
            &mut s,
            &uid,
            &obj(json!({"ExistingPassword": "x", "NewPassword": "y"})),
        );
        let Err(WriteError::Invalid(_, errs)) = bad else {
            panic!("expected a mismatch")
        };
        assert_eq!(errs[0].code, "currentPasswordMismatch");
        change_password(
            &mut s,
            &uid,
            &obj(json!({"ExistingPassword": seed::PASSWORD, "NewPassword": "new-pass"})),
        )
        .unwrap();
        assert!(s.password_matches(&uid, "new-pass"));
    }

    #[test]
    fn cases_are_created_and_validated() {
        let mut s = seed::store();
        let before = s.all(Kind::Case).len();
        let uid = create_case(
            &mut s,
            &obj(json!({"Subject": "Hi", "Body": "b", "FromPerson": {"Uid": seed::person_uid("erin")}, "Source": 1})),
        )
        .unwrap();
        assert_eq!(s.all(Kind::Case).len(), before + 1);
        assert_eq!(
            s.get(&uid).unwrap().one("FromPerson"),
            Some(seed::person_uid("erin").as_str())
        );
        let bad = create_case(
            &mut s,
            &obj(json!({"Subject": "Hi", "FromPerson": {"Uid": "nope"}, "Source": -1})),
        );
        let Err(WriteError::Invalid(_, errs)) = bad else {
            panic!("expected validation errors")
        };
        let props: Vec<_> = errs.iter().map(|e| e.property).collect();
        assert_eq!(props, ["FromPerson", "Source"]);
    }
}
