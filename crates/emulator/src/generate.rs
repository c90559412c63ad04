//! The deterministic demo org generator (`--users N --seed S`).
//!
//! The same seed always yields the same org, so demos, benches and tests can name
//! users they expect. The data is deliberately varied where sync code tends to break:
//! names from many cultures (with diacritics, apostrophes, hyphens and spaces, folded to
//! ASCII for addresses), colliding names (`given.family2@`), nested org units, a few
//! suspended, archived and hidden-from-GAL users, aliases, managers, typed phones,
//! external ids, custom schemas and nested groups. 100,000 users take well under a
//! second in release builds.

use std::collections::HashSet;

use orgsync_wire::directory::{User, UserExternalId, UserName, UserOrganization, UserPhone};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::EmulatorConfig;
use crate::directory::{DirectoryState, StoredUser};

pub const COMPANY: &str = "Example Corp";

const GIVEN: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Emma",
    "Olivia",
    "Noah",
    "Liam",
    "Sophia",
    "Ava",
    "Isabella",
    "Mia",
    "Lucas",
    "Ethan",
    "Zoë",
    "Chloé",
    "Renée",
    "José",
    "María",
    "Lucía",
    "Sofía",
    "Martín",
    "Mateo",
    "Álvaro",
    "Inés",
    "Joaquín",
    "Camila",
    "Valentina",
    "Diego",
    "Gabriel",
    "João",
    "Gonçalo",
    "Beatriz",
    "Thiago",
    "François",
    "Hélène",
    "Léa",
    "Chloe",
    "Amélie",
    "Jérôme",
    "Céline",
    "Björn",
    "Søren",
    "Åsa",
    "Ingrid",
    "Sven",
    "Freja",
    "Jürgen",
    "Jörg",
    "Günther",
    "Lena",
    "Lukas",
    "Anna-Lena",
    "Karl-Heinz",
    "Łukasz",
    "Małgorzata",
    "Wojciech",
    "Zofia",
    "Agnieszka",
    "Dvořák",
    "Jiří",
    "Tomáš",
    "Kateřina",
    "István",
    "Zsófia",
    "Ioana",
    "Andrei",
    "Dmitri",
    "Olga",
    "Natalia",
    "Ivan",
    "Svetlana",
    "Yusuf",
    "Ayşe",
    "Mehmet",
    "Elif",
    "Çağla",
    "Ahmed",
    "Fatima",
    "Omar",
    "Layla",
    "Yasmin",
    "Karim",
    "Nour",
    "Amir",
    "Leila",
    "Reza",
    "Darius",
    "Shirin",
    "Priya",
    "Arjun",
    "Ananya",
    "Rahul",
    "Deepika",
    "Vikram",
    "Lakshmi",
    "Sanjay",
    "Aarav",
    "Saanvi",
    "Wei",
    "Li",
    "Xiu Ying",
    "Jun",
    "Mei",
    "Hao",
    "Yan",
    "Hiroshi",
    "Yuki",
    "Haruto",
    "Sakura",
    "Ren",
    "Aoi",
    "Min-jun",
    "Seo-yeon",
    "Ji-ho",
    "Ha-eun",
    "Thanh",
    "Linh",
    "Minh",
    "Anh",
    "Nguyet",
    "Siti",
    "Putri",
    "Budi",
    "Ayodele",
    "Chinedu",
    "Ngozi",
    "Oluwaseun",
    "Kwame",
    "Ama",
    "Kofi",
    "Abena",
    "Thabo",
    "Naledi",
    "Sipho",
    "Zanele",
    "Amara",
    "Tariq",
    "Aisha",
    "Malik",
    "Imani",
    "Keanu",
    "Leilani",
    "Kai",
    "Moana",
    "Aroha",
    "Tane",
    "Siobhán",
    "Niamh",
    "Seán",
    "Aoife",
    "Ciarán",
    "Eilidh",
    "Rhys",
    "Cerys",
    "Dylan",
    "Ffion",
    "Mariam",
    "Yosef",
    "Noa",
    "Tamar",
    "Eitan",
    "Chiara",
    "Giulia",
    "Lorenzo",
    "Matteo",
    "Francesca",
    "Niccolò",
    "Eleni",
    "Giorgos",
    "Dimitra",
    "Nikos",
    "Ana",
    "Luka",
    "Mila",
    "Nikola",
    "Jelena",
    "Marija",
    "Ximena",
    "Santiago",
    "Guadalupe",
    "Alejandro",
];

const FAMILY: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernández",
    "López",
    "González",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Pérez",
    "Thompson",
    "White",
    "Harris",
    "Sánchez",
    "Clark",
    "Ramírez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "O'Brien",
    "O'Connor",
    "McCarthy",
    "Ní Bhriain",
    "MacDonald",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schäfer",
    "Koch",
    "Dubois",
    "Lefèvre",
    "Moreau",
    "Girard",
    "Bonnet",
    "Rousseau",
    "Faure",
    "Lévesque",
    "da Silva",
    "dos Santos",
    "Pereira",
    "Oliveira",
    "Conceição",
    "Gonçalves",
    "Rossi",
    "Russo",
    "Ferrari",
    "Esposito",
    "Bianchi",
    "Romano",
    "Colombo",
    "De Luca",
    "Van der Berg",
    "de Vries",
    "Jansen",
    "Bakker",
    "Visser",
    "Janssens",
    "Peeters",
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Hansen",
    "Jørgensen",
    "Sørensen",
    "Korhonen",
    "Virtanen",
    "Nowak",
    "Kowalski",
    "Wiśniewski",
    "Wójcik",
    "Kowalczyk",
    "Novák",
    "Svoboda",
    "Dvořák",
    "Horváth",
    "Nagy",
    "Popescu",
    "Ionescu",
    "Ivanov",
    "Petrov",
    "Smirnova",
    "Kuznetsov",
    "Popović",
    "Jovanović",
    "Papadopoulos",
    "Yılmaz",
    "Kaya",
    "Demir",
    "Şahin",
    "Çelik",
    "Öztürk",
    "Haddad",
    "Khalil",
    "Nasser",
    "Al-Farsi",
    "Hosseini",
    "Mohammadi",
    "Rahimi",
    "Cohen",
    "Levi",
    "Mizrahi",
    "Patel",
    "Sharma",
    "Singh",
    "Kumar",
    "Gupta",
    "Reddy",
    "Iyer",
    "Nair",
    "Chatterjee",
    "Banerjee",
    "Khan",
    "Ahmed",
    "Hossain",
    "Chowdhury",
    "Wang",
    "Zhang",
    "Liu",
    "Chen",
    "Yang",
    "Huang",
    "Zhao",
    "Wu",
    "Zhou",
    "Xu",
    "Sato",
    "Suzuki",
    "Takahashi",
    "Tanaka",
    "Watanabe",
    "Itō",
    "Yamamoto",
    "Nakamura",
    "Kim",
    "Park",
    "Choi",
    "Jung",
    "Kang",
    "Santoso",
    "Wijaya",
    "Reyes",
    "Cruz",
    "Bautista",
    "Okafor",
    "Adeyemi",
    "Okonkwo",
    "Mensah",
    "Boateng",
    "Owusu",
    "Nkosi",
    "Dlamini",
    "Mokoena",
    "Kamau",
    "Otieno",
    "Mwangi",
    "Tesfaye",
    "Haile",
    "Kealoha",
    "Ngata",
    "Te Rangi",
    "Saint-Pierre",
    "Lund-Hansen",
    "Smith-Jones",
];

/// (department, org unit, weight, titles, cost centre, group local part)
type Unit = (
    &'static str,
    &'static str,
    u32,
    &'static [&'static str],
    &'static str,
    &'static str,
);

const UNITS: &[Unit] = &[
    (
        "Engineering",
        "/Engineering",
        18,
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "Staff Engineer",
            "QA Engineer",
            "Engineering Manager",
        ],
        "CC-1000",
        "engineering-core",
    ),
    (
        "Engineering",
        "/Engineering/Platform",
        12,
        &[
            "Site Reliability Engineer",
            "Platform Engineer",
            "Senior Platform Engineer",
            "Security Engineer",
        ],
        "CC-1010",
        "platform",
    ),
    (
        "Engineering",
        "/Engineering/Mobile",
        8,
        &[
            "iOS Engineer",
            "Android Engineer",
            "Mobile Engineer",
            "Product Designer",
        ],
        "CC-1020",
        "mobile",
    ),
    (
        "Sales",
        "/Sales/EMEA",
        10,
        &[
            "Account Executive",
            "Sales Development Representative",
            "Solutions Engineer",
            "Regional Sales Manager",
        ],
        "CC-2010",
        "sales-emea",
    ),
    (
        "Sales",
        "/Sales/Americas",
        12,
        &[
            "Account Executive",
            "Sales Development Representative",
            "Solutions Engineer",
            "Regional Sales Manager",
        ],
        "CC-2020",
        "sales-americas",
    ),
    (
        "Sales",
        "/Sales/APAC",
        6,
        &[
            "Account Executive",
            "Sales Development Representative",
            "Channel Manager",
        ],
        "CC-2030",
        "sales-apac",
    ),
    (
        "Support",
        "/Support",
        10,
        &[
            "Support Engineer",
            "Customer Success Manager",
            "Technical Account Manager",
            "Support Lead",
        ],
        "CC-3000",
        "support",
    ),
    (
        "Marketing",
        "/Marketing",
        7,
        &[
            "Product Marketing Manager",
            "Content Strategist",
            "Growth Marketer",
            "Brand Designer",
        ],
        "CC-4000",
        "marketing",
    ),
    (
        "Finance",
        "/Finance",
        5,
        &[
            "Accountant",
            "Financial Analyst",
            "Controller",
            "Payroll Specialist",
        ],
        "CC-5000",
        "finance",
    ),
    (
        "People",
        "/People",
        4,
        &[
            "HR Business Partner",
            "Recruiter",
            "People Operations Specialist",
        ],
        "CC-6000",
        "people",
    ),
    (
        "Legal",
        "/Legal",
        2,
        &["Counsel", "Paralegal", "Compliance Officer"],
        "CC-7000",
        "legal",
    ),
    (
        "Operations",
        "/Operations",
        4,
        &[
            "Office Manager",
            "IT Support Specialist",
            "Procurement Specialist",
        ],
        "CC-8000",
        "operations",
    ),
];

/// Department groups that nest the unit groups (`all-staff` nests these).
pub const DEPARTMENT_GROUPS: &[(&str, &str)] = &[
    ("Engineering", "engineering"),
    ("Sales", "sales"),
    ("Support", "support-team"),
    ("Marketing", "marketing-team"),
    ("Finance", "finance-team"),
    ("People", "people-team"),
    ("Legal", "legal-team"),
    ("Operations", "operations-team"),
];

/// ASCII-fold a name for an email local part: diacritics dropped, `ß`→`ss`, `ø`→`o`,
/// anything not alphanumeric removed.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let mapped: &str = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' | 'ạ' | 'ầ' | 'ấ' | 'ậ' | 'ắ'
            | 'ằ' => "a",
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' => "a",
            'æ' | 'Æ' => "ae",
            'ç' | 'ć' | 'č' | 'Ç' | 'Č' | 'Ć' => "c",
            'ď' | 'đ' | 'Đ' => "d",
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' | 'ễ' | 'ệ' | 'ế' | 'ề' | 'ể' | 'É' | 'È' => {
                "e"
            }
            'ğ' => "g",
            'ì' | 'í' | 'î' | 'ï' | 'ı' | 'İ' | 'Í' | 'ị' | 'ỉ' => "i",
            'ł' | 'Ł' => "l",
            'ñ' | 'ń' | 'ň' | 'Ñ' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' | 'Ö' | 'Ø' | 'Ó' | 'ơ' | 'ộ' | 'ố'
            | 'ồ' | 'ổ' | 'ờ' | 'ớ' | 'ợ' => "o",
            'œ' => "oe",
            'ř' => "r",
            'ś' | 'š' | 'ş' | 'Ś' | 'Š' | 'Ş' => "s",
            'ß' => "ss",
            'ť' | 'ţ' => "t",
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'Ü' | 'Ú' | 'ư' | 'ừ' | 'ứ' | 'ự' => {
                "u"
            }
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' | 'Ż' | 'Ž' => "z",
            'ạ'..='ỹ' => "",
            c if c.is_ascii_alphanumeric() => {
                out.push(c.to_ascii_lowercase());
                continue;
            }
            _ => "",
        };
        out.push_str(mapped);
    }
    out
}

/// Deterministic customer id (`C0` + 7 characters) for a domain and seed.
pub fn customer_id(domain: &str, seed: u64) -> String {
    let h = Sha256::digest(format!("{domain}/{seed}").as_bytes());
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let tail: String = h[..7]
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect();
    format!("C0{tail}")
}

fn date(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

fn phones(unit: &str, rng: &mut StdRng) -> Vec<UserPhone> {
    let (work, mobile) = if unit.contains("EMEA") {
        (
            format!("+44 20 7946 {:04}", rng.random_range(0..10_000)),
            format!("+44 7700 900{:03}", rng.random_range(0..1000)),
        )
    } else if unit.contains("APAC") {
        (
            format!("+61 2 5550 {:04}", rng.random_range(0..10_000)),
            format!("+61 491 570 {:03}", rng.random_range(0..1000)),
        )
    } else {
        (
            format!("+1 415 555 {:04}", rng.random_range(0..10_000)),
            format!("+1 202 555 {:04}", rng.random_range(0..10_000)),
        )
    };
    let mut v = vec![UserPhone {
        value: work,
        kind: Some("work".into()),
        primary: Some(true),
        ..Default::default()
    }];
    if rng.random_bool(0.7) {
        v.push(UserPhone {
            value: mobile,
            kind: Some("mobile".into()),
            ..Default::default()
        });
    }
    v
}

struct Spec<'a> {
    given: &'a str,
    family: &'a str,
    local: String,
    unit: usize,
}

/// Generate the org for `config` (the caller stores it in the emulator).
pub fn generate(config: &EmulatorConfig, now_ms: i64) -> DirectoryState {
    let domain = config.domain.to_ascii_lowercase();
    let mut state = DirectoryState::new(&domain, &customer_id(&domain, config.seed));
    let mut rng = StdRng::seed_from_u64(config.seed);
    let total_weight: u32 = UNITS.iter().map(|u| u.2).sum();

    let mut taken: HashSet<String> = HashSet::with_capacity(config.users * 2 + 1);
    taken.insert("admin".into());
    for (_, g) in DEPARTMENT_GROUPS {
        taken.insert((*g).into());
    }
    for u in UNITS {
        taken.insert(u.5.into());
    }
    taken.insert("all-staff".into());

    // The admin: always present, always first in insertion order.
    let admin_id = crate::directory::users::new_user_id(&state, &mut rng);
    let mut admin = User {
        id: Some(admin_id),
        primary_email: Some(config.admin_email().to_ascii_lowercase()),
        name: Some(UserName {
            given_name: Some("Org".into()),
            family_name: Some("Admin".into()),
            full_name: Some("Org Admin".into()),
            ..Default::default()
        }),
        is_admin: Some(true),
        is_delegated_admin: Some(false),
        org_unit_path: Some("/".into()),
        organizations: Some(vec![UserOrganization {
            name: Some(COMPANY.into()),
            title: Some("IT Administrator".into()),
            department: Some("IT".into()),
            primary: Some(true),
            ..Default::default()
        }]),
        custom_schemas: Some(roles(true, true, true, 7, "2015-01-05")),
        ..Default::default()
    };
    common(&mut admin, now_ms - 3000 * 86_400_000, true);
    state.put_user(StoredUser {
        user: admin,
        version: 0,
        deleted_at_ms: None,
    });

    // Names and addresses first, so aliases can avoid every primary address.
    let mut specs: Vec<Spec> = Vec::with_capacity(config.users);
    for _ in 0..config.users {
        let given = *GIVEN.choose(&mut rng).expect("non-empty list");
        let family = *FAMILY.choose(&mut rng).expect("non-empty list");
        let base = format!("{}.{}", fold(given), fold(family));
        let mut local = base.clone();
        let mut n = 2;
        while !taken.insert(local.clone()) {
            local = format!("{base}{n}");
            n += 1;
        }
        let mut pick = rng.random_range(0..total_weight);
        let mut unit = 0;
        for (i, u) in UNITS.iter().enumerate() {
            if pick < u.2 {
                unit = i;
                break;
            }
            pick -= u.2;
        }
        specs.push(Spec {
            given,
            family,
            local,
            unit,
        });
    }

    let mut managers: Vec<Option<String>> = vec![None; UNITS.len()];
    let mut placed: Vec<(String, usize, bool)> = Vec::with_capacity(specs.len());
    let mut all_taken = taken;
    for (i, spec) in specs.iter().enumerate() {
        let (dept, ou, _, titles, cost_center, _) = UNITS[spec.unit];
        let email = format!("{}@{domain}", spec.local);
        let is_manager = managers[spec.unit].is_none();
        let title = if is_manager {
            format!("Head of {}", ou.rsplit('/').next().unwrap_or(dept))
        } else {
            (*titles.choose(&mut rng).expect("titles")).to_string()
        };
        let is_admin = i % 1000 == 7;
        let created = now_ms - rng.random_range(30..3000) * 86_400_000;
        let mut user = User {
            id: Some(crate::directory::users::new_user_id(&state, &mut rng)),
            primary_email: Some(email.clone()),
            name: Some(UserName {
                given_name: Some(spec.given.into()),
                family_name: Some(spec.family.into()),
                full_name: Some(format!("{} {}", spec.given, spec.family)),
                ..Default::default()
            }),
            is_admin: Some(is_admin),
            is_delegated_admin: Some(i % 1000 == 501),
            suspended: Some(rng.random_bool(0.02)),
            archived: Some(rng.random_bool(0.01)),
            include_in_global_address_list: Some(!rng.random_bool(0.01)),
            org_unit_path: Some(ou.into()),
            organizations: Some(vec![UserOrganization {
                name: Some(COMPANY.into()),
                title: Some(title),
                department: Some(dept.into()),
                cost_center: Some(cost_center.into()),
                primary: Some(true),
                kind: Some("work".into()),
                ..Default::default()
            }]),
            phones: Some(phones(ou, &mut rng)),
            external_ids: Some(vec![UserExternalId {
                value: format!("E{:06}", i + 1),
                kind: Some("organization".into()),
                ..Default::default()
            }]),
            custom_schemas: Some(roles(
                is_admin,
                dept == "Finance" || rng.random_bool(0.02),
                dept == "Support",
                rng.random_range(1..=9),
                &date(created),
            )),
            ..Default::default()
        };
        if user.suspended == Some(true) {
            user.suspension_reason = Some("ADMIN".into());
        }
        if rng.random_bool(0.03) {
            let alias_local = format!(
                "{}{}",
                fold(spec.given).chars().next().unwrap_or('x'),
                fold(spec.family)
            );
            if all_taken.insert(alias_local.clone()) {
                user.aliases = Some(vec![format!("{alias_local}@{domain}")]);
            }
        }
        match &managers[spec.unit] {
            Some(m) => {
                user.extra
                    .insert("relations".into(), json!([{"type": "manager", "value": m}]));
            }
            None => managers[spec.unit] = Some(email),
        }
        common(&mut user, created, rng.random_bool(0.7));
        placed.push((user.id.clone().unwrap_or_default(), spec.unit, is_manager));
        state.put_user(StoredUser {
            user,
            version: 0,
            deleted_at_ms: None,
        });
    }
    generate_groups(&mut state, &placed, &mut rng);
    generate_rooms(&mut state, placed.len(), &mut rng);
    // The custom attributes every generated user carries (`roles`).
    state.define_schema(crate::directory::schemas::schema(
        "Roles",
        &[("admin", "BOOL"), ("billing", "BOOL"), ("support", "BOOL")],
    ));
    state.define_schema(crate::directory::schemas::schema(
        "EmployeeInfo",
        &[("jobLevel", "INT64"), ("startDate", "DATE")],
    ));
    state
}

/// Meeting rooms (`resources.calendars`): one per 25 people, at least two, across three
/// buildings and their floors, with capacities from 2 to 20.
fn generate_rooms(state: &mut DirectoryState, people: usize, rng: &mut StdRng) {
    use orgsync_wire::directory::CalendarResource;
    const BUILDINGS: &[(&str, u32)] = &[("HQ", 6), ("Annex", 3), ("Lab", 2)];
    const NAMES: &[&str] = &[
        "Ada", "Babbage", "Curie", "Darwin", "Euler", "Faraday", "Gauss", "Hopper", "Turing",
        "Noether", "Lovelace", "Meitner", "Newton", "Pascal", "Raman", "Tesla",
    ];
    let rooms = (people / 25).max(2);
    for i in 0..rooms {
        let (building, floors) = BUILDINGS[i % BUILDINGS.len()];
        let floor = rng.random_range(1..=floors);
        let capacity = *[2, 4, 6, 8, 10, 12, 20]
            .get(rng.random_range(0..7))
            .unwrap_or(&6);
        let name = format!("{} {}", NAMES[i % NAMES.len()], i / NAMES.len() + 1);
        let id = format!("room-{i:05}");
        state.resources.insert(
            id.clone(),
            CalendarResource {
                resource_id: id,
                resource_name: name,
                resource_type: Some("Meeting room".into()),
                resource_category: Some("CONFERENCE_ROOM".into()),
                capacity: Some(capacity),
                building_id: Some(building.into()),
                floor_name: Some(floor.to_string()),
                user_visible_description: Some(format!(
                    "{building}, floor {floor}, {capacity} seats"
                )),
                ..CalendarResource::default()
            },
        );
    }
}

/// One group per org unit (managers are OWNERs), one per department nesting its unit
/// groups, and `all-staff` nesting the department groups, with the admin as OWNER.
fn generate_groups(state: &mut DirectoryState, placed: &[(String, usize, bool)], rng: &mut StdRng) {
    use crate::directory::groups::{GroupRec, MemberRec};
    let domain = state.domain.clone();
    let mut unit_groups: Vec<String> = Vec::with_capacity(UNITS.len());
    for (i, (dept, ou, _, _, _, local)) in UNITS.iter().enumerate() {
        let members = placed
            .iter()
            .filter(|(_, unit, _)| *unit == i)
            .map(|(id, _, manager)| MemberRec::user(id, if *manager { "OWNER" } else { "MEMBER" }))
            .collect();
        let id = state.put_group(GroupRec::new(
            rng,
            &format!("{local}@{domain}"),
            &format!("{dept} {}", ou.rsplit('/').next().unwrap_or(dept)),
            &format!("Everyone in {ou}"),
            members,
        ));
        unit_groups.push(id);
    }
    let mut dept_groups = Vec::new();
    for (dept, local) in DEPARTMENT_GROUPS {
        let members = UNITS
            .iter()
            .zip(&unit_groups)
            .filter(|(u, _)| u.0 == *dept)
            .map(|(_, gid)| MemberRec::group(gid))
            .collect();
        dept_groups.push(state.put_group(GroupRec::new(
            rng,
            &format!("{local}@{domain}"),
            dept,
            &format!("The {dept} department"),
            members,
        )));
    }
    let mut members: Vec<MemberRec> = dept_groups.iter().map(|g| MemberRec::group(g)).collect();
    if let Some(admin) = state.find_subject(&format!("admin@{domain}")) {
        members.insert(0, MemberRec::user(&admin.id, "OWNER"));
    }
    state.put_group(GroupRec::new(
        rng,
        &format!("all-staff@{domain}"),
        "All staff",
        "Everyone in the company",
        members,
    ));
}

/// The org unit table: (department, org unit path, group local part).
pub fn units() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    UNITS.iter().map(|u| (u.0, u.1, u.5))
}

fn roles(admin: bool, billing: bool, support: bool, level: u32, start: &str) -> Map<String, Value> {
    let v = json!({
        "Roles": {"admin": admin, "billing": billing, "support": support},
        "EmployeeInfo": {"jobLevel": level, "startDate": start}
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn common(user: &mut User, created_ms: i64, two_sv: bool) {
    user.creation_time = Some(crate::directory::users::rfc3339(created_ms));
    user.suspended.get_or_insert(false);
    user.archived.get_or_insert(false);
    user.include_in_global_address_list.get_or_insert(true);
    user.emails = Some(vec![orgsync_wire::directory::UserEmail {
        address: user.primary_email.clone().unwrap_or_default(),
        primary: Some(true),
        ..Default::default()
    }]);
    let e = &mut user.extra;
    e.insert("isMailboxSetup".into(), Value::Bool(true));
    e.insert("agreedToTerms".into(), Value::Bool(true));
    e.insert("changePasswordAtNextLogin".into(), Value::Bool(false));
    e.insert("ipWhitelisted".into(), Value::Bool(false));
    e.insert("isEnrolledIn2Sv".into(), Value::Bool(two_sv));
    e.insert("isEnforcedIn2Sv".into(), Value::Bool(false));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(users: usize, seed: u64) -> EmulatorConfig {
        EmulatorConfig {
            users,
            seed,
            ..EmulatorConfig::for_tests(users)
        }
    }

    #[test]
    fn folds_names_to_ascii() {
        assert_eq!(fold("Zoë"), "zoe");
        assert_eq!(fold("O'Brien"), "obrien");
        assert_eq!(fold("Łukasz"), "lukasz");
        assert_eq!(fold("Søren"), "soren");
        assert_eq!(fold("Nguyễn"), "nguyen");
        assert_eq!(fold("Trần"), "tran");
        assert_eq!(fold("Anna-Lena"), "annalena");
        assert!(fold("Nguyễn").is_ascii());
    }

    #[test]
    fn same_seed_same_org_and_unique_addresses() {
        let a = generate(&cfg(2000, 7), 1_700_000_000_000);
        let b = generate(&cfg(2000, 7), 1_700_000_000_000);
        let ea: Vec<_> = a
            .users_sorted()
            .map(|u| (u.id.clone(), u.primary_email.clone()))
            .collect();
        let eb: Vec<_> = b
            .users_sorted()
            .map(|u| (u.id.clone(), u.primary_email.clone()))
            .collect();
        assert_eq!(ea, eb);
        assert_eq!(a.user_count(), 2001);
        let c = generate(&cfg(2000, 8), 1_700_000_000_000);
        let ec: Vec<_> = c.users_sorted().map(|u| u.primary_email.clone()).collect();
        assert_ne!(ec, eb.iter().map(|x| x.1.clone()).collect::<Vec<_>>());
        let mut seen = HashSet::new();
        for u in a.users_sorted() {
            assert!(seen.insert(u.primary_email.clone().unwrap().to_lowercase()));
            for al in u.aliases.iter().flatten() {
                assert!(seen.insert(al.to_lowercase()), "alias {al} collides");
            }
            assert!(u.primary_email.as_deref().unwrap().is_ascii());
            assert_eq!(u.id.as_deref().unwrap().len(), 21);
        }
        let admin = a.find_subject("ADMIN@example.com").unwrap();
        assert!(admin.is_admin);
    }

    #[test]
    fn org_is_varied() {
        let s = generate(&cfg(5000, 1), 1_700_000_000_000);
        let users: Vec<_> = s.users_sorted().collect();
        let count = |f: &dyn Fn(&&User) -> bool| users.iter().filter(|u| f(u)).count();
        let suspended = count(&|u| u.suspended == Some(true));
        let archived = count(&|u| u.archived == Some(true));
        let hidden = count(&|u| u.include_in_global_address_list == Some(false));
        let admins = count(&|u| u.is_admin == Some(true));
        let aliased = count(&|u| u.aliases.is_some());
        assert!((40..200).contains(&suspended), "{suspended}");
        assert!((15..100).contains(&archived), "{archived}");
        assert!((15..100).contains(&hidden), "{hidden}");
        assert!((3..20).contains(&admins), "{admins}");
        assert!(aliased > 50, "{aliased}");
        assert!(
            users
                .iter()
                .any(|u| u.primary_email.as_deref().unwrap().contains('2'))
        );
        let ous: HashSet<_> = users
            .iter()
            .map(|u| u.org_unit_path.clone().unwrap())
            .collect();
        assert!(ous.len() >= 10);
    }
}
