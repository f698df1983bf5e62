//! The seeded domain: three accounts of two people each (one primary, one not), two plan
//! families with four plans, subscriptions, invoices with line items, transactions and
//! support cases.
//!
//! # Guarantees
//! - Uids are derived from fixed tags (`store::uid_for`), so they are the same on every run;
//!   dates are relative to the start time.
//! - Every person's password is [`PASSWORD`]; emails are `<firstname>@example.com`.
//! - Every account has a current subscription and at least one invoice; Acme also has an
//!   expired earlier subscription.
//! - Bob (Acme, not primary) is also a member of Globex: a person in two accounts, as Outseta
//!   allows. His token is bound to Acme, his first account.

use serde_json::{Value, json};

use super::model::{Entity, Kind};
use super::store::{Store, days_from_now, uid_for};

/// The password of every seeded person.
pub const PASSWORD: &str = "demo-password";

struct PersonSeed {
    key: &'static str,
    first: &'static str,
    last: &'static str,
    title: &'static str,
    primary: bool,
}

struct AccountSeed {
    key: &'static str,
    name: &'static str,
    stage: i64,
    people: [PersonSeed; 2],
    /// (plan key, renewal term 1 monthly / 2 yearly, start days ago)
    plan: (&'static str, i64, i64),
    invoices: usize,
    paid: bool,
}

const fn p(
    key: &'static str,
    first: &'static str,
    last: &'static str,
    title: &'static str,
    primary: bool,
) -> PersonSeed {
    PersonSeed {
        key,
        first,
        last,
        title,
        primary,
    }
}

const ACCOUNTS: [AccountSeed; 3] = [
    AccountSeed {
        key: "acme",
        name: "Acme Inc",
        stage: 3,
        people: [
            p("alice", "Alice", "Anderson", "CTO", true),
            p("bob", "Bob", "Brown", "Engineer", false),
        ],
        plan: ("pro", 1, 95),
        invoices: 3,
        paid: true,
    },
    AccountSeed {
        key: "globex",
        name: "Globex Corporation",
        stage: 3,
        people: [
            p("carol", "Carol", "Chen", "Founder", true),
            p("dan", "Dan", "Davis", "Analyst", false),
        ],
        plan: ("business", 2, 200),
        invoices: 1,
        paid: true,
    },
    AccountSeed {
        key: "initech",
        name: "Initech",
        stage: 2,
        people: [
            p("erin", "Erin", "Evans", "Product Manager", true),
            p("frank", "Frank", "Foster", "Designer", false),
        ],
        plan: ("basic", 1, 5),
        invoices: 1,
        paid: false,
    },
];

/// Memberships beyond each person's first account: (person key, account key, primary). In
/// Outseta a person can belong to several accounts; their token stays bound to the first.
const EXTRA_MEMBERSHIPS: [(&str, &str, bool); 1] = [("bob", "globex", false)];

/// (key, name, monthly, annual, family key, active)
const PLANS: [(&str, &str, f64, f64, &str, bool); 4] = [
    ("basic", "Basic", 49.99, 499.0, "main", true),
    ("pro", "Pro", 149.99, 1499.0, "main", true),
    ("business", "Business", 299.99, 2999.0, "main", true),
    ("starter", "Starter (legacy)", 9.0, 90.0, "legacy", false),
];

const CASES: [(&str, &str, &str, i64, i64); 4] = [
    (
        "alice",
        "Cannot export invoices",
        "<p>The CSV export of invoices times out.</p>",
        1,
        20,
    ),
    (
        "alice",
        "Add SSO for our team",
        "<p>Do you support SAML single sign-on?</p>",
        2,
        7,
    ),
    (
        "carol",
        "Change of billing address",
        "<p>We moved; please update the billing address.</p>",
        1,
        3,
    ),
    (
        "frank",
        "Trial extension",
        "<p>Could we get one more week of trial?</p>",
        1,
        1,
    ),
];

fn uid(kind: &str, key: &str) -> String {
    uid_for(&format!("{kind}:{key}"))
}

pub fn person_uid(key: &str) -> String {
    uid("person", key)
}

pub fn account_uid(key: &str) -> String {
    uid("account", key)
}

fn address(tag: &str, line1: Value, city: &str, created: &str) -> Value {
    json!({
        "AddressLine1": line1,
        "AddressLine2": null,
        "AddressLine3": null,
        "City": city,
        "State": "CA",
        "PostalCode": "94105",
        "Country": "United States of America",
        "Uid": uid("address", tag),
        "Created": created,
        "Updated": created,
    })
}

fn stage_label(stage: i64) -> &'static str {
    match stage {
        2 => "Trialing",
        3 => "Subscribing",
        4 => "Canceling",
        5 => "Expired",
        6 => "Trial Expired",
        7 => "Past due",
        _ => "",
    }
}

/// The account stage label Outseta derives from `AccountStage`.
pub fn account_stage_label(stage: &Value) -> Value {
    Value::String(stage.as_i64().map(stage_label).unwrap_or("").into())
}

/// Outseta's derived full name: "First Last", or the email when both are empty.
pub fn full_name(first: &Value, last: &Value, email: &Value) -> Value {
    let s = format!(
        "{} {}",
        first.as_str().unwrap_or(""),
        last.as_str().unwrap_or("")
    );
    let s = s.trim();
    if s.is_empty() {
        email.clone()
    } else {
        Value::String(s.to_owned())
    }
}

fn seed_catalog(store: &mut Store) {
    let created = days_from_now(-400);
    let mut main = Entity::new(Kind::PlanFamily, &uid("family", "main"), &created)
        .with("Name", json!("Main Plans"))
        .with("IsActive", json!(true))
        .with("IsDefault", json!(true));
    let mut legacy = Entity::new(Kind::PlanFamily, &uid("family", "legacy"), &created)
        .with("Name", json!("Legacy Plans"))
        .with("IsActive", json!(false))
        .with("IsDefault", json!(false));
    for (key, name, monthly, annual, family, active) in PLANS {
        let plan_uid = uid("plan", key);
        let plan = Entity::new(Kind::Plan, &plan_uid, &created)
            .with("Name", json!(name))
            .with("Description", json!(format!("<p>The {name} plan.</p>")))
            .with_one("PlanFamily", Some(&uid("family", family)))
            .with("AccountRegistrationMode", json!(1))
            .with("IsQuantityEditable", json!(false))
            .with("MinimumQuantity", json!(0))
            .with("MonthlyRate", json!(monthly))
            .with("AnnualRate", json!(annual))
            .with("QuarterlyRate", json!(0.0))
            .with("OneTimeRate", json!(0.0))
            .with("SetupFee", json!(0.0))
            .with("IsTaxable", json!(false))
            .with("IsActive", json!(active))
            .with("IsPerUser", json!(false))
            .with("TrialPeriodDays", json!(14))
            .with("UnitOfMeasure", json!(""))
            .with("NumberOfSubscriptions", json!(0));
        if family == "main" {
            main.push_many("Plans", &plan_uid);
        } else {
            legacy.push_many("Plans", &plan_uid);
        }
        store.insert(plan);
    }
    store.insert(main);
    store.insert(legacy);
}

fn seed_person(store: &mut Store, a: &AccountSeed, ps: &PersonSeed, created: &str) -> String {
    let person_uid = person_uid(ps.key);
    let email = format!("{}@example.com", ps.key);
    let mut person = Entity::new(Kind::Person, &person_uid, created)
        .with("Email", json!(email))
        .with("FirstName", json!(ps.first))
        .with("LastName", json!(ps.last))
        .with(
            "MailingAddress",
            address(ps.key, json!("1 Market Street"), "San Francisco", created),
        )
        .with("PasswordMustChange", json!(false))
        .with("PhoneMobile", json!(""))
        .with("PhoneWork", json!(""))
        .with("Title", json!(ps.title))
        .with("OAuthIntegrationStatus", json!(0))
        .with("UserAgentPlatformBrowser", json!(""))
        .with("HasLoggedIn", json!(true))
        .with("LastLoginDateTime", json!(days_from_now(-1)))
        .with_one("Account", None);
    let fname = full_name(
        person.value("FirstName"),
        person.value("LastName"),
        &json!(email),
    );
    person.values.insert("FullName", fname);
    let membership = uid("membership", ps.key);
    person.push_many("PersonAccount", &membership);
    store.insert(person);
    store.set_password(&person_uid, PASSWORD);
    store.insert(
        Entity::new(Kind::PersonAccount, &membership, created)
            .with_one("Person", Some(&person_uid))
            .with_one("Account", Some(&account_uid(a.key)))
            .with("IsPrimary", json!(ps.primary))
            .with("ReceiveInvoices", json!(ps.primary)),
    );
    membership
}

/// The one current subscription bought with a discount code.
const DISCOUNTED_ACCOUNT: &str = "globex";
const DISCOUNT_CODE: &str = "LAUNCH20";

fn seed_subscription(
    store: &mut Store,
    a: &AccountSeed,
    tag: &str,
    plan: &str,
    term: i64,
    start_days_ago: i64,
    end_days_ago: Option<i64>,
) -> String {
    let sub_uid = uid("subscription", tag);
    let start = days_from_now(-start_days_ago);
    let period = if term == 2 { 365 } else { 30 };
    let renewal = match end_days_ago {
        Some(_) => Value::Null,
        None => {
            let mut next = period - start_days_ago % period;
            if next == 0 {
                next = period;
            }
            json!(days_from_now(next))
        }
    };
    let rate = PLANS
        .iter()
        .find(|pl| pl.0 == plan)
        .map(|pl| if term == 2 { pl.3 } else { pl.2 })
        .unwrap_or(0.0);
    store.insert(
        Entity::new(Kind::Subscription, &sub_uid, &start)
            .with("BillingRenewalTerm", json!(term))
            .with_one("Account", Some(&account_uid(a.key)))
            .with_one("Plan", Some(&uid("plan", plan)))
            .with("Quantity", Value::Null)
            .with("StartDate", json!(start))
            .with(
                "EndDate",
                end_days_ago.map_or(Value::Null, |d| json!(days_from_now(-d))),
            )
            .with(
                "ExpirationDate",
                end_days_ago.map_or(Value::Null, |d| json!(days_from_now(-d))),
            )
            .with("RenewalDate", renewal)
            .with("NewRequiredQuantity", Value::Null)
            .with("IsPlanUpgradeRequired", json!(false))
            .with("PlanUpgradeRequiredMessage", Value::Null)
            .with("Rate", json!(rate))
            .with("Amount", json!(rate))
            .with(
                "DiscountCode",
                match (a.key, end_days_ago) {
                    (DISCOUNTED_ACCOUNT, None) => json!(DISCOUNT_CODE),
                    _ => Value::Null,
                },
            ),
    );
    sub_uid
}

/// Seeds invoices (one per period) with one line item and their transactions; returns the
/// lifetime revenue.
fn seed_invoices(store: &mut Store, a: &AccountSeed, sub_uid: &str, number: &mut i64) -> f64 {
    let (plan, term, start) = a.plan;
    let rate = store
        .get(sub_uid)
        .and_then(|s| s.value("Rate").as_f64())
        .unwrap_or(0.0);
    let period = if term == 2 { 365 } else { 30 };
    let mut revenue = 0.0;
    for i in 0..a.invoices {
        let tag = format!("{}:{i}", a.key);
        let inv_uid = uid("invoice", &tag);
        let days_ago = start - period * i64::try_from(i).unwrap_or(0);
        let date = days_from_now(-days_ago);
        let paid = a.paid;
        let line_uid = uid("lineitem", &tag);
        store.insert(
            Entity::new(Kind::InvoiceLineItem, &line_uid, &date)
                .with("StartDate", json!(date))
                .with("EndDate", json!(days_from_now(period - days_ago)))
                .with("Description", json!(format!("{plan} plan")))
                .with("UnitOfMeasure", json!(""))
                .with("Quantity", json!(1))
                .with("Rate", json!(rate))
                .with("Amount", json!(rate))
                .with("Tax", json!(0.0))
                .with_one("Invoice", Some(&inv_uid))
                .with("LineItemType", json!(1)),
        );
        let mut inv = Entity::new(Kind::Invoice, &inv_uid, &date)
            .with("InvoiceDate", json!(date))
            .with("PaymentReminderSentDate", Value::Null)
            .with("Number", json!(*number))
            .with("BillingInvoiceStatus", json!(if paid { 2 } else { 1 }))
            .with_one("Subscription", Some(sub_uid))
            .with("Amount", json!(rate))
            .with("AmountOutstanding", json!(if paid { 0.0 } else { rate }))
            .with("IsUserGenerated", json!(false));
        inv.push_many("InvoiceLineItems", &line_uid);
        store.insert(inv);
        *number += 1;
        let mut txs = vec![(1, "invoice")];
        if paid {
            txs.push((2, "payment"));
            revenue += rate;
        }
        for (ty, what) in txs {
            store.insert(
                Entity::new(
                    Kind::Transaction,
                    &uid("transaction", &format!("{what}:{tag}")),
                    &date,
                )
                .with("TransactionDate", json!(date))
                .with("BillingTransactionType", json!(ty))
                .with_one("Account", Some(&account_uid(a.key)))
                .with_one("Invoice", Some(&inv_uid))
                .with("Amount", json!(rate))
                .with("IsElectronicTransaction", json!(ty == 2)),
            );
        }
    }
    revenue
}

fn seed_account(store: &mut Store, a: &AccountSeed, number: &mut i64) {
    let created = days_from_now(-(a.plan.2 + 30));
    let acc_uid = account_uid(a.key);
    let mut account = Entity::new(Kind::Account, &acc_uid, &created)
        .with("Name", json!(a.name))
        .with("ClientIdentifier", Value::Null)
        .with("IsDemo", json!(false))
        .with(
            "BillingAddress",
            address(
                &format!("{}:billing", a.key),
                json!("1 Main Street"),
                "Springfield",
                &created,
            ),
        )
        .with(
            "MailingAddress",
            address(
                &format!("{}:mailing", a.key),
                Value::Null,
                "Springfield",
                &created,
            ),
        )
        .with("AccountStage", json!(a.stage))
        .with("AccountStageLabel", json!(stage_label(a.stage)))
        .with("PaymentInformation", Value::Null)
        .with("LastLoginDateTime", json!(days_from_now(-1)))
        .with("RewardFulReferralId", Value::Null)
        .with("HasLoggedIn", json!(true))
        .with("DomainName", json!(format!("{}.example.com", a.key)))
        .with("RecaptchaToken", Value::Null)
        .with("Currency", json!("USD"));
    for n in 1..=5 {
        let name = match n {
            1 => "AccountSpecificPageUrl1",
            2 => "AccountSpecificPageUrl2",
            3 => "AccountSpecificPageUrl3",
            4 => "AccountSpecificPageUrl4",
            _ => "AccountSpecificPageUrl5",
        };
        account.values.insert(name, json!(""));
    }
    for ps in &a.people {
        let m = seed_person(store, a, ps, &created);
        account.push_many("PersonAccount", &m);
        if ps.primary {
            account = account.with_one("PrimaryContact", Some(&person_uid(ps.key)));
        }
    }
    if a.key == "acme" {
        let old = seed_subscription(
            store,
            a,
            "acme:old",
            "basic",
            1,
            a.plan.2 + 30,
            Some(a.plan.2),
        );
        account.push_many("Subscriptions", &old);
    }
    let (plan, term, start) = a.plan;
    let current = seed_subscription(store, a, a.key, plan, term, start, None);
    account.push_many("Subscriptions", &current);
    let revenue = seed_invoices(store, a, &current, number);
    let account = account
        .with_one("CurrentSubscription", Some(&current))
        .with_one("LatestSubscription", Some(&current))
        .with_one("PrimarySubscription", Some(&current))
        .with("LifetimeRevenue", json!((revenue * 100.0).round() / 100.0));
    store.insert(account);
}

fn seed_extra_memberships(store: &mut Store) {
    for (person, account, primary) in EXTRA_MEMBERSHIPS {
        let (person_uid, account_uid) = (person_uid(person), account_uid(account));
        let membership = uid("membership", &format!("{person}:{account}"));
        let created = days_from_now(-30);
        store.insert(
            Entity::new(Kind::PersonAccount, &membership, &created)
                .with_one("Person", Some(&person_uid))
                .with_one("Account", Some(&account_uid))
                .with("IsPrimary", json!(primary))
                .with("ReceiveInvoices", json!(primary)),
        );
        for owner in [&person_uid, &account_uid] {
            if let Some(e) = store.get_mut(owner) {
                e.push_many("PersonAccount", &membership);
            }
        }
    }
}

fn seed_cases(store: &mut Store) {
    for (i, (who, subject, body, status, days_ago)) in CASES.iter().enumerate() {
        let date = days_from_now(-days_ago);
        store.insert(
            Entity::new(Kind::Case, &uid("case", &i.to_string()), &date)
                .with("SubmittedDateTime", json!(date))
                .with_one("FromPerson", Some(&person_uid(who)))
                .with("AssignedToPersonClientIdentifier", Value::Null)
                .with("Subject", json!(subject))
                .with("Body", json!(body))
                .with("UserAgent", Value::Null)
                .with("Status", json!(status))
                .with("Source", json!(1))
                .with("IsOnline", json!(false))
                .with_one("LastCaseHistory", None)
                .with("Participants", Value::Null)
                .with("RecaptchaToken", Value::Null),
        );
    }
}

/// The seeded domain.
pub fn store() -> Store {
    let mut store = Store::default();
    seed_catalog(&mut store);
    let mut number = 1001;
    for a in &ACCOUNTS {
        seed_account(&mut store, a, &mut number);
    }
    seed_extra_memberships(&mut store);
    seed_cases(&mut store);
    store
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_has_the_promised_shape() {
        let s = store();
        assert_eq!(s.all(Kind::Account).len(), 3);
        assert_eq!(s.all(Kind::Person).len(), 6);
        assert_eq!(s.all(Kind::Plan).len(), 4);
        assert_eq!(s.all(Kind::PlanFamily).len(), 2);
        assert_eq!(s.all(Kind::Subscription).len(), 4);
        assert_eq!(s.all(Kind::Invoice).len(), 5);
        assert_eq!(s.all(Kind::Case).len(), 4);
        assert!(s.all(Kind::Transaction).len() >= 5);
        let alice = s.person_by_email("ALICE@example.com").unwrap();
        assert!(s.password_matches(&alice.uid, PASSWORD));
        assert!(!s.password_matches(&alice.uid, "nope"));
        let acme = s.get_kind(Kind::Account, &account_uid("acme")).unwrap();
        assert_eq!(acme.many("PersonAccount").len(), 2);
        assert_eq!(acme.many("Subscriptions").len(), 2);
        assert!(acme.one("CurrentSubscription").is_some());
        assert_eq!(acme.value("AccountStageLabel"), "Subscribing");
        // Bob belongs to Acme (first, his token's account) and to Globex.
        let bob = s.person_by_email("bob@example.com").unwrap();
        let accounts: Vec<&str> = bob
            .many("PersonAccount")
            .iter()
            .filter_map(|m| s.get(m)?.one("Account"))
            .collect();
        assert_eq!(accounts, [account_uid("acme"), account_uid("globex")]);
        let globex = s.get_kind(Kind::Account, &account_uid("globex")).unwrap();
        assert_eq!(globex.many("PersonAccount").len(), 3);
    }
}
