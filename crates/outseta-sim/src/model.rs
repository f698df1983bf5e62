//! The entity model: Outseta's object types, their properties (scalars and references to
//! other objects), and one stored entity.
//!
//! # Guarantees
//! - Every entity has `Uid`, `Created` and `Updated` (appended after its own properties).
//! - Property names are looked up case-insensitively, as Outseta's API binds them.
//! - References are stored as Uids; the object graph is resolved at render time, so a write
//!   to one entity is visible through every object that refers to it.

use std::collections::HashMap;

use serde_json::Value;

/// An Outseta object type (`_objectType`). The last group is never seeded: lists of them
/// render as `[]` and single references as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Person,
    PersonAccount,
    Account,
    Subscription,
    Plan,
    PlanFamily,
    Invoice,
    InvoiceLineItem,
    Transaction,
    Case,
    Deal,
    SubscriptionAddOn,
    DiscountCouponSubscription,
    PlanAddOn,
    ContentGroup,
    CaseHistory,
}

/// What a property holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prop {
    /// A JSON value (strings, numbers, booleans, null, or a value object such as an address).
    Scalar,
    /// A reference to one object, or null.
    One(Kind),
    /// A list of objects.
    Many(Kind),
}

use Kind as K;
use Prop::{Many, One, Scalar as S};

const BASE: &[(&str, Prop)] = &[("Uid", S), ("Created", S), ("Updated", S)];

const PERSON: &[(&str, Prop)] = &[
    ("Email", S),
    ("FirstName", S),
    ("LastName", S),
    ("MailingAddress", S),
    ("PasswordMustChange", S),
    ("PhoneMobile", S),
    ("PhoneWork", S),
    ("Title", S),
    ("Timezone", S),
    ("Language", S),
    ("IPAddress", S),
    ("Referer", S),
    ("UserAgent", S),
    ("LastLoginDateTime", S),
    ("OAuthGoogleProfileId", S),
    ("PersonAccount", Many(K::PersonAccount)),
    ("DealPeople", Many(K::Deal)),
    ("Account", One(K::Account)),
    ("FullName", S),
    ("OAuthIntegrationStatus", S),
    ("UserAgentPlatformBrowser", S),
    ("HasLoggedIn", S),
    ("ProfileImageS3Url", S),
];

const PERSON_ACCOUNT: &[(&str, Prop)] = &[
    ("Person", One(K::Person)),
    ("Account", One(K::Account)),
    ("IsPrimary", S),
    ("ReceiveInvoices", S),
];

const ACCOUNT: &[(&str, Prop)] = &[
    ("Name", S),
    ("ClientIdentifier", S),
    ("IsDemo", S),
    ("BillingAddress", S),
    ("MailingAddress", S),
    ("AccountStage", S),
    ("PaymentInformation", S),
    ("PersonAccount", Many(K::PersonAccount)),
    ("Subscriptions", Many(K::Subscription)),
    ("Deals", Many(K::Deal)),
    ("LastLoginDateTime", S),
    ("AccountSpecificPageUrl1", S),
    ("AccountSpecificPageUrl2", S),
    ("AccountSpecificPageUrl3", S),
    ("AccountSpecificPageUrl4", S),
    ("AccountSpecificPageUrl5", S),
    ("RewardFulReferralId", S),
    ("HasLoggedIn", S),
    ("AccountStageLabel", S),
    ("DomainName", S),
    ("LatestSubscription", One(K::Subscription)),
    ("CurrentSubscription", One(K::Subscription)),
    ("PrimaryContact", One(K::Person)),
    ("PrimarySubscription", One(K::Subscription)),
    ("RecaptchaToken", S),
    ("LifetimeRevenue", S),
    ("Currency", S),
];

const SUBSCRIPTION: &[(&str, Prop)] = &[
    ("BillingRenewalTerm", S),
    ("Account", One(K::Account)),
    ("Plan", One(K::Plan)),
    ("Quantity", S),
    ("StartDate", S),
    ("EndDate", S),
    ("ExpirationDate", S),
    ("RenewalDate", S),
    ("NewRequiredQuantity", S),
    ("IsPlanUpgradeRequired", S),
    ("PlanUpgradeRequiredMessage", S),
    ("SubscriptionAddOns", Many(K::SubscriptionAddOn)),
    (
        "DiscountCouponSubscriptions",
        Many(K::DiscountCouponSubscription),
    ),
    ("Rate", S),
    ("Amount", S),
    ("DiscountCode", S),
];

const PLAN: &[(&str, Prop)] = &[
    ("Name", S),
    ("Description", S),
    ("PlanFamily", One(K::PlanFamily)),
    ("AccountRegistrationMode", S),
    ("IsQuantityEditable", S),
    ("MinimumQuantity", S),
    ("MonthlyRate", S),
    ("AnnualRate", S),
    ("QuarterlyRate", S),
    ("OneTimeRate", S),
    ("SetupFee", S),
    ("IsTaxable", S),
    ("IsActive", S),
    ("IsPerUser", S),
    ("TrialPeriodDays", S),
    ("UnitOfMeasure", S),
    ("PlanAddOns", Many(K::PlanAddOn)),
    ("ContentGroups", Many(K::ContentGroup)),
    ("NumberOfSubscriptions", S),
];

const PLAN_FAMILY: &[(&str, Prop)] = &[
    ("Name", S),
    ("IsActive", S),
    ("IsDefault", S),
    ("Plans", Many(K::Plan)),
];

const INVOICE: &[(&str, Prop)] = &[
    ("InvoiceDate", S),
    ("PaymentReminderSentDate", S),
    ("Number", S),
    ("BillingInvoiceStatus", S),
    ("Subscription", One(K::Subscription)),
    ("Amount", S),
    ("AmountOutstanding", S),
    ("InvoiceLineItems", Many(K::InvoiceLineItem)),
    ("IsUserGenerated", S),
];

const INVOICE_LINE_ITEM: &[(&str, Prop)] = &[
    ("StartDate", S),
    ("EndDate", S),
    ("Description", S),
    ("UnitOfMeasure", S),
    ("Quantity", S),
    ("Rate", S),
    ("Amount", S),
    ("Tax", S),
    ("Invoice", One(K::Invoice)),
    ("LineItemType", S),
];

const TRANSACTION: &[(&str, Prop)] = &[
    ("TransactionDate", S),
    ("BillingTransactionType", S),
    ("Account", One(K::Account)),
    ("Invoice", One(K::Invoice)),
    ("Amount", S),
    ("IsElectronicTransaction", S),
];

/// The simulator's own shape (Outseta does not document a case history's fields).
const CASE_HISTORY: &[(&str, Prop)] = &[
    ("Case", One(K::Case)),
    ("Comment", S),
    ("Type", S),
    ("AgentName", S),
];

const CASE: &[(&str, Prop)] = &[
    ("SubmittedDateTime", S),
    ("FromPerson", One(K::Person)),
    ("AssignedToPersonClientIdentifier", S),
    ("Subject", S),
    ("Body", S),
    ("UserAgent", S),
    ("Status", S),
    ("Source", S),
    ("CaseHistories", Many(K::CaseHistory)),
    ("IsOnline", S),
    ("LastCaseHistory", One(K::CaseHistory)),
    ("Participants", S),
    ("RecaptchaToken", S),
];

impl Kind {
    /// The `_objectType` / `TypeName` of this kind.
    pub fn name(self) -> &'static str {
        match self {
            K::Person => "Person",
            K::PersonAccount => "PersonAccount",
            K::Account => "Account",
            K::Subscription => "Subscription",
            K::Plan => "Plan",
            K::PlanFamily => "PlanFamily",
            K::Invoice => "Invoice",
            K::InvoiceLineItem => "InvoiceLineItem",
            K::Transaction => "Transaction",
            K::Case => "Case",
            K::Deal => "Deal",
            K::SubscriptionAddOn => "SubscriptionAddOn",
            K::DiscountCouponSubscription => "DiscountCouponSubscription",
            K::PlanAddOn => "PlanAddOn",
            K::ContentGroup => "ContentGroup",
            K::CaseHistory => "CaseHistory",
        }
    }

    fn own_props(self) -> &'static [(&'static str, Prop)] {
        match self {
            K::Person => PERSON,
            K::PersonAccount => PERSON_ACCOUNT,
            K::Account => ACCOUNT,
            K::Subscription => SUBSCRIPTION,
            K::Plan => PLAN,
            K::PlanFamily => PLAN_FAMILY,
            K::Invoice => INVOICE,
            K::InvoiceLineItem => INVOICE_LINE_ITEM,
            K::Transaction => TRANSACTION,
            K::Case => CASE,
            K::CaseHistory => CASE_HISTORY,
            _ => &[],
        }
    }

    /// Every property in output order, `Uid`/`Created`/`Updated` last.
    pub fn props(self) -> impl Iterator<Item = (&'static str, Prop)> {
        self.own_props().iter().chain(BASE.iter()).copied()
    }

    /// Looks a property up case-insensitively; returns its canonical name.
    pub fn prop(self, name: &str) -> Option<(&'static str, Prop)> {
        self.props().find(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

/// A stored reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    One(Option<String>),
    Many(Vec<String>),
}

/// One stored object. Scalars and links are keyed by canonical property name; a property
/// not present reads as `null` (scalar), `None` (one) or empty (many).
#[derive(Debug, Clone)]
pub struct Entity {
    pub kind: Kind,
    pub uid: String,
    pub values: HashMap<&'static str, Value>,
    pub links: HashMap<&'static str, Link>,
}

impl Entity {
    pub fn new(kind: Kind, uid: &str, created: &str) -> Self {
        let mut values = HashMap::new();
        values.insert("Uid", Value::String(uid.to_owned()));
        values.insert("Created", Value::String(created.to_owned()));
        values.insert("Updated", Value::String(created.to_owned()));
        Self {
            kind,
            uid: uid.to_owned(),
            values,
            links: HashMap::new(),
        }
    }

    /// Sets a scalar by canonical name (builder style, for the seed).
    pub fn with(mut self, name: &'static str, v: Value) -> Self {
        self.values.insert(name, v);
        self
    }

    pub fn with_one(mut self, name: &'static str, uid: Option<&str>) -> Self {
        self.links
            .insert(name, Link::One(uid.map(|u| u.to_owned())));
        self
    }

    pub fn push_many(&mut self, name: &'static str, uid: &str) {
        match self.links.get_mut(name) {
            Some(Link::Many(v)) => v.push(uid.to_owned()),
            _ => {
                self.links.insert(name, Link::Many(vec![uid.to_owned()]));
            }
        }
    }

    pub fn value(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.values.get(name).unwrap_or(&NULL)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.value(name).as_str()
    }

    pub fn one(&self, name: &str) -> Option<&str> {
        match self.links.get(name) {
            Some(Link::One(Some(u))) => Some(u),
            _ => None,
        }
    }

    pub fn many(&self, name: &str) -> &[String] {
        match self.links.get(name) {
            Some(Link::Many(v)) => v,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn props_are_case_insensitive_and_end_with_the_base() {
        assert_eq!(K::Person.prop("email"), Some(("Email", S)));
        assert_eq!(
            K::Subscription.prop("ACCOUNT"),
            Some(("Account", One(K::Account)))
        );
        assert_eq!(K::Deal.prop("uid"), Some(("Uid", S)));
        assert_eq!(K::Person.prop("Password"), None);
        let last: Vec<_> = K::Case.props().map(|(n, _)| n).collect();
        assert_eq!(&last[last.len() - 3..], &["Uid", "Created", "Updated"]);
    }
}
