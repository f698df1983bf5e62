use super::*;
use crate::seed;

fn q(raw: &str, kind: Kind) -> ListQuery {
    ListQuery::parse(&Params::parse(Some(raw)), kind).unwrap()
}

fn uids<'a>(page: &[&'a Entity]) -> Vec<&'a str> {
    page.iter().map(|e| e.uid.as_str()).collect()
}

#[test]
fn params_are_case_insensitive_and_join_duplicates() {
    let p = Params::parse(Some(
        "Fields=Uid&LIMIT=5&account.uid=a&Account.Uid=b&x=%2A+y",
    ));
    assert_eq!(p.get("fields"), Some("Uid"));
    assert_eq!(p.get("limit"), Some("5"));
    assert_eq!(p.get("ACCOUNT.UID"), Some("a,b"));
    assert_eq!(p.get("x"), Some("* y"));
}

#[test]
fn paging_uses_a_page_index_and_caps_the_limit() {
    let s = seed::store();
    let all = s.all(Kind::Person);
    let first = q("limit=2&offset=0", Kind::Person);
    let second = q("limit=2&offset=1", Kind::Person);
    let (total, p0) = apply(&s, all.clone(), &first);
    let (_, p1) = apply(&s, all.clone(), &second);
    assert_eq!(total, 6);
    assert_eq!(uids(&p0), [all[0].uid.as_str(), all[1].uid.as_str()]);
    assert_eq!(uids(&p1), [all[2].uid.as_str(), all[3].uid.as_str()]);
    let (_, far) = apply(&s, all, &q("limit=2&offset=9", Kind::Person));
    assert!(far.is_empty());
    assert_eq!(q("", Kind::Person).limit, 25);
    assert_eq!(
        q("limit=500", Kind::Person).limit,
        25,
        "default fields expand children"
    );
    assert_eq!(q("limit=500&fields=*", Kind::Person).limit, 100);
    assert_eq!(q("limit=500&fields=Uid,Email", Kind::Person).limit, 100);
    assert_eq!(
        q("limit=500&fields=Uid,PersonAccount.*", Kind::Person).limit,
        25
    );
    assert_eq!(q("limit=0", Kind::Person).limit, 25);
    assert!(ListQuery::parse(&Params::parse(Some("limit=abc")), Kind::Person).is_err());
}

#[test]
fn exact_filters_on_dotted_paths() {
    let s = seed::store();
    let acme = seed::account_uid("acme");
    let subs = s.all(Kind::Subscription);
    let (n, page) = apply(
        &s,
        subs.clone(),
        &q(&format!("Account.Uid={acme}"), Kind::Subscription),
    );
    assert_eq!(n, 2);
    assert!(page.iter().all(|e| e.one("Account") == Some(acme.as_str())));
    // Any key case.
    let (n2, _) = apply(
        &s,
        subs.clone(),
        &q(&format!("account.uid={acme}"), Kind::Subscription),
    );
    assert_eq!(n2, 2);
    // Uids are exact; a differently-cased Uid matches nothing.
    let (n3, _) = apply(
        &s,
        subs.clone(),
        &q(
            &format!("Account.Uid={}", acme.to_lowercase()),
            Kind::Subscription,
        ),
    );
    assert_eq!(n3, usize::from(acme == acme.to_lowercase()) * 2);
    // Through lists: subscriptions of accounts bob belongs to (Acme's two, Globex's one).
    let bob = seed::person_uid("bob");
    let (n4, _) = apply(
        &s,
        subs,
        &q(
            &format!("Account.PersonAccount.Person.Uid={bob}"),
            Kind::Subscription,
        ),
    );
    assert_eq!(n4, 3);
    let alice = seed::person_uid("alice");
    let (n5, page) = apply(
        &s,
        s.all(Kind::Case),
        &q(&format!("FromPerson.Uid={alice}"), Kind::Case),
    );
    assert_eq!(n5, 2);
    assert!(
        page.iter()
            .all(|c| c.one("FromPerson") == Some(alice.as_str()))
    );
    // Deep invoice filter.
    let (n6, _) = apply(
        &s,
        s.all(Kind::Invoice),
        &q(&format!("Subscription.Account.Uid={acme}"), Kind::Invoice),
    );
    assert_eq!(n6, 3);
}

#[test]
fn string_filters_are_case_insensitive_with_wildcards_and_operators() {
    let s = seed::store();
    let people = s.all(Kind::Person);
    let count = |raw: &str| apply(&s, people.clone(), &q(raw, Kind::Person)).0;
    assert_eq!(count("Email=ALICE@example.com"), 1);
    assert_eq!(count("Email=*@example.com"), 6);
    assert_eq!(count("Email=a*"), 1);
    assert_eq!(count("FirstName=*R*"), 3); // Carol, Erin, Frank
    assert_eq!(count("Email__ne=alice@example.com"), 5);
    assert_eq!(count("ProfileImageS3Url__isnull=true"), 6);
    assert_eq!(count("Title__isnull=false"), 6);
    assert_eq!(count("MailingAddress.City=san francisco"), 6);
    assert_eq!(
        count("donotlog=1&q=zzz&Nonexistent=1"),
        6,
        "non-filters are ignored"
    );
    let invoices = s.all(Kind::Invoice);
    let inv = |raw: &str| apply(&s, invoices.clone(), &q(raw, Kind::Invoice)).0;
    assert_eq!(inv("Amount__gte=149.99"), 4);
    assert_eq!(inv("Amount__lt=100"), 1);
    assert_eq!(inv("BillingInvoiceStatus=1"), 1);
}

#[test]
fn order_by_sorts() {
    let s = seed::store();
    let (_, page) = apply(
        &s,
        s.all(Kind::Person),
        &q("orderBy=FirstName+DESC&fields=*", Kind::Person),
    );
    let names: Vec<_> = page
        .iter()
        .map(|p| p.str("FirstName").unwrap_or(""))
        .collect();
    assert_eq!(names, ["Frank", "Erin", "Dan", "Carol", "Bob", "Alice"]);
}

#[test]
fn fields_parse_into_a_tree() {
    let f = Fields::parse("*,PersonAccount.*,PersonAccount.Person.Uid");
    assert!(f.star);
    let pa = f.child("personaccount").unwrap();
    assert!(pa.star);
    assert!(pa.child("Person").unwrap().child("uid").is_some());
    assert!(f.expands_children(Kind::Account));
    assert!(!Fields::parse("Uid,Name").expands_children(Kind::Account));
    assert!(Fields::parse("*.*").expansion("anything").is_some());
    assert_eq!(
        fields_of(&Params::parse(Some("fields="))),
        Fields::default_selection()
    );
}
