//! Deterministic mailbox content: the default folders, a small directory for GAL searches,
//! and `--items N` generated mails (some HTML, some with attachments), contacts, events (one
//! recurring meeting with attendees), tasks and notes. The same seed gives the same mailbox.

use super::model::{Attachment, Prop};
use super::state::{NewItem, Person, Rng, State};

/// ServerIds of the default folders (they equal the folder types, for easy reading).
pub mod folder {
    pub const INBOX: &str = "2";
    pub const DRAFTS: &str = "3";
    pub const DELETED: &str = "4";
    pub const SENT: &str = "5";
    pub const OUTBOX: &str = "6";
    pub const TASKS: &str = "7";
    pub const CALENDAR: &str = "8";
    pub const CONTACTS: &str = "9";
    pub const NOTES: &str = "10";
    /// The user-created mail folder "Projects" (type 12).
    pub const PROJECTS: &str = "12";
}

const FIRST: [&str; 10] = [
    "Ada", "Brian", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
];
const LAST: [&str; 10] = [
    "Lovelace",
    "Kernighan",
    "Moreau",
    "Petrov",
    "Rossi",
    "Haddad",
    "Hopper",
    "Tanaka",
    "Silva",
    "Berg",
];
const TOPICS: [&str; 8] = [
    "quarterly report",
    "site visit",
    "firmware rollout",
    "budget review",
    "shipping delay",
    "team lunch",
    "security audit",
    "customer feedback",
];

/// Creates the default folders and the directory, then `items` generated items.
pub fn populate(state: &mut State, items: usize, now: i64) {
    for (id, name, ty) in [
        (folder::INBOX, "Inbox", 2u8),
        (folder::DRAFTS, "Drafts", 3),
        (folder::DELETED, "Deleted Items", 4),
        (folder::SENT, "Sent Items", 5),
        (folder::OUTBOX, "Outbox", 6),
        (folder::TASKS, "Tasks", 7),
        (folder::CALENDAR, "Calendar", 8),
        (folder::CONTACTS, "Contacts", 9),
        (folder::NOTES, "Notes", 10),
        (folder::PROJECTS, "Projects", 12),
    ] {
        state.folders.push(super::model::Folder {
            server_id: id.to_string(),
            parent_id: "0".to_string(),
            name: name.to_string(),
            folder_type: ty,
        });
    }
    for (i, (f, l)) in FIRST.iter().zip(LAST.iter()).enumerate() {
        state.directory.push(Person {
            display_name: format!("{f} {l}"),
            first_name: f.to_string(),
            last_name: l.to_string(),
            email: format!("{}.{}@example.com", f.to_lowercase(), l.to_lowercase()),
            phone: format!("+1 555 010{i}"),
            title: ["Engineer", "Manager", "Technician"][i % 3].to_string(),
            company: "Example Corp".to_string(),
            alias: f.to_lowercase(),
        });
    }
    let user = state.user_email.clone();
    state.directory.push(Person {
        display_name: "Lab User".into(),
        first_name: "Lab".into(),
        last_name: "User".into(),
        email: user.clone(),
        phone: "+1 555 0199".into(),
        title: "Tester".into(),
        company: "Example Corp".into(),
        alias: user.split('@').next().unwrap_or("lab").to_string(),
    });
    let mut rng = state.rng.clone();
    let mails = items;
    for i in 0..mails {
        let (new, t) = mail(&mut rng, i, &user, now);
        let _ = state.add_item(new, t);
    }
    for i in 0..items.div_ceil(2) {
        let (new, t) = contact(&mut rng, i, now);
        let _ = state.add_item(new, t);
    }
    for i in 0..items.div_ceil(4) {
        let (new, t) = event(&mut rng, i, &user, now);
        let _ = state.add_item(new, t);
    }
    for i in 0..items.div_ceil(4) {
        let (new, t) = task(&mut rng, i, now);
        let _ = state.add_item(new, t);
    }
    for i in 0..items.div_ceil(4) {
        let (new, t) = note(i, now);
        let _ = state.add_item(new, t);
    }
    state.rng = rng;
}

fn person(rng: &mut Rng) -> (String, String) {
    let f = FIRST[rng.below(10) as usize];
    let l = LAST[rng.below(10) as usize];
    (
        format!("{f} {l}"),
        format!("{}.{}@example.com", f.to_lowercase(), l.to_lowercase()),
    )
}

/// A generated mail: HTML every third, an attachment every fifth, older the higher `i`
/// (six hours apart), every seventh in the Projects folder.
pub fn mail(rng: &mut Rng, i: usize, user: &str, now: i64) -> (NewItem, i64) {
    let (name, addr) = person(rng);
    let topic = TOPICS[rng.below(TOPICS.len() as u64) as usize];
    let subject = format!("[{}] About the {topic}", i + 1);
    let received = now - 6 * 3600 * i as i64 - 60;
    let body = format!(
        "Hello,\r\n\r\nthis is message {} about the {topic}. {}\r\n\r\nRegards,\r\n{name}\r\n",
        i + 1,
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
            .repeat(1 + rng.below(8) as usize)
    );
    let html = (i % 3 == 0).then(|| {
        format!(
            "<html><body><p>Hello,</p><p>this is message <b>{}</b> about the {topic}.</p></body></html>",
            i + 1
        )
    });
    let attachments = if i % 5 == 0 {
        let size = 200 + rng.below(3000) as usize;
        vec![Attachment {
            name: format!("report-{}.bin", i + 1),
            content_type: "application/octet-stream".into(),
            data: (0..size).map(|_| rng.below(256) as u8).collect(),
            inline: false,
        }]
    } else {
        Vec::new()
    };
    let folder_id = if i % 7 == 6 {
        folder::PROJECTS
    } else {
        folder::INBOX
    };
    let props = vec![
        Prop::text("To", format!("\"Lab User\" <{user}>")),
        Prop::text("From", format!("\"{name}\" <{addr}>")),
        Prop::text("Subject", subject.clone()),
        Prop::text("DateReceived", super::model::iso_time(received)),
        Prop::text("DisplayTo", "Lab User"),
        Prop::text("ThreadTopic", subject),
        Prop::text("Importance", "1"),
        Prop::text("Read", if i % 2 == 0 { "0" } else { "1" }),
        Prop::text("MessageClass", "IPM.Note"),
        Prop::text("InternetCPID", "65001"),
        Prop::text("ContentClass", "urn:content-classes:message"),
    ];
    (
        NewItem {
            folder_id: folder_id.into(),
            props,
            body,
            html,
            attachments,
        },
        received,
    )
}

fn contact(rng: &mut Rng, i: usize, now: i64) -> (NewItem, i64) {
    let f = FIRST[i % 10];
    let l = LAST[(i / 10 + rng.below(10) as usize) % 10];
    let props = vec![
        Prop::text("CompanyName", "Example Corp"),
        Prop::text(
            "Email1Address",
            format!(
                "\"{f} {l}\" <{}.{}{i}@example.net>",
                f.to_lowercase(),
                l.to_lowercase()
            ),
        ),
        Prop::text("FileAs", format!("{l}, {f}")),
        Prop::text("FirstName", f),
        Prop::text("LastName", l),
        Prop::text("MobilePhoneNumber", format!("+1 555 02{i:02}")),
    ];
    (
        NewItem {
            folder_id: folder::CONTACTS.into(),
            props,
            body: format!("Met at the {} meeting.", TOPICS[i % TOPICS.len()]),
            ..NewItem::default()
        },
        now,
    )
}

/// The UTC time zone as EAS writes it: a base64 TIME_ZONE_INFORMATION of zeros.
pub fn utc_timezone() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([0u8; 172])
}

fn event(rng: &mut Rng, i: usize, user: &str, now: i64) -> (NewItem, i64) {
    let start = now - now.rem_euclid(3600) + (i as i64 * 2 - 2) * 86_400 + 9 * 3600;
    let end = start + 3600;
    let topic = TOPICS[rng.below(TOPICS.len() as u64) as usize];
    let mut props = vec![
        Prop::text("Timezone", utc_timezone()),
        Prop::text("AllDayEvent", "0"),
        Prop::text("BusyStatus", "2"),
        Prop::text("OrganizerName", "Lab User"),
        Prop::text("OrganizerEmail", user),
        Prop::text("DtStamp", super::model::compact_time(now)),
        Prop::text("EndTime", super::model::compact_time(end)),
        Prop::text("Location", format!("Room {}", 100 + i)),
        Prop::text("Reminder", "15"),
        Prop::text("Sensitivity", "0"),
        Prop::text("Subject", format!("Meeting: {topic}")),
        Prop::text("StartTime", super::model::compact_time(start)),
        Prop::text("UID", format!("lab-event-{i}@easync-lab.test")),
        Prop::text("MeetingStatus", if i == 0 { "1" } else { "0" }),
    ];
    if i == 0 {
        // The recurring weekly meeting with attendees.
        let mut attendees = Vec::new();
        for k in 0..3 {
            let (name, addr) = (
                format!("{} {}", FIRST[k], LAST[k]),
                format!(
                    "{}.{}@example.com",
                    FIRST[k].to_lowercase(),
                    LAST[k].to_lowercase()
                ),
            );
            attendees.push(Prop::list(
                "Attendee",
                vec![
                    Prop::text("Email", addr),
                    Prop::text("Name", name),
                    Prop::text("AttendeeStatus", "0"),
                    Prop::text("AttendeeType", "1"),
                ],
            ));
        }
        props.push(Prop::list("Attendees", attendees));
        props.push(Prop::list(
            "Recurrence",
            vec![
                Prop::text("Type", "1"),
                Prop::text("Interval", "1"),
                Prop::text(
                    "DayOfWeek",
                    (1u32 << ((start.div_euclid(86_400) + 4) % 7)).to_string(),
                ),
                Prop::text("Occurrences", "10"),
            ],
        ));
    }
    (
        NewItem {
            folder_id: folder::CALENDAR.into(),
            props,
            body: format!("Agenda: the {topic}."),
            ..NewItem::default()
        },
        end,
    )
}

fn task(rng: &mut Rng, i: usize, now: i64) -> (NewItem, i64) {
    let due = now + (i as i64 + 1) * 86_400;
    let done = rng.below(3) == 0;
    let props = vec![
        Prop::text("Complete", if done { "1" } else { "0" }),
        Prop::text("DueDate", super::model::iso_time(due)),
        Prop::text("UtcDueDate", super::model::iso_time(due)),
        Prop::text("Importance", "1"),
        Prop::text("ReminderSet", "0"),
        Prop::text("Sensitivity", "0"),
        Prop::text(
            "Subject",
            format!("Task {}: {}", i + 1, TOPICS[i % TOPICS.len()]),
        ),
    ];
    let mut props = props;
    if done {
        props.insert(1, Prop::text("DateCompleted", super::model::iso_time(now)));
    }
    (
        NewItem {
            folder_id: folder::TASKS.into(),
            props,
            body: "Steps: prepare, do, check.".into(),
            ..NewItem::default()
        },
        due,
    )
}

fn note(i: usize, now: i64) -> (NewItem, i64) {
    let props = vec![
        Prop::text("Subject", format!("Note {}", i + 1)),
        Prop::text("MessageClass", "IPM.StickyNote"),
        Prop::text(
            "LastModifiedDate",
            super::model::iso_time(now - i as i64 * 3600),
        ),
    ];
    (
        NewItem {
            folder_id: folder::NOTES.into(),
            props,
            body: format!("Remember item {} on the list.", i + 1),
            ..NewItem::default()
        },
        now,
    )
}
