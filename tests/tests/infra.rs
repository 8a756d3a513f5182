//! The Terraform in `infra/` against the code it deploys.
//!
//! - One Lambda per folder in `functions/`, no more, no fewer.
//! - Each function's IAM grants exactly the DynamoDB actions its store roles
//!   call, and `secretsmanager:GetSecretValue` exactly where it reads the
//!   secret. The grants live in `infra/modules/tollgate/store-access.json`
//!   (the IAM policies are built from it and from nothing else); this test
//!   derives the same facts from the source:
//!   - function → store roles: the "Store roles" table of ARCHITECTURE.md
//!     (which says it is "the same list its IAM policy grants");
//!   - store role → SDK operations: the role's `impl <Role> for DynamoStore`
//!     file in `shared/src/store/dynamo/`, scanned for the SDK calls it makes
//!     (`.get_item(`, `.query(` with or without `.index_name(`, the
//!     `Put`/`Update`/`Delete`/`ConditionCheck` builders of a
//!     `TransactWriteItems`, ...). An SDK call this test does not know fails
//!     it, so a new call cannot slip by without its IAM action;
//!   - secrets: every function starts through `functions::run`, whose
//!     `Deps::from_env` loads the secrets named by `TOLLGATE_SECRETS`.
//! - The table in Terraform has the keys, index and TTL attribute the store's
//!   key constants name.
//!
//! Text checks on Rust and HCL, no parser: deliberately simple. When one
//! fails, its message says which file to change.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const STORE_ACCESS: &str = "infra/modules/tollgate/store-access.json";
const DYNAMO_DIR: &str = "shared/src/store/dynamo";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Where a DynamoDB action applies: the table, or its index GSI1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum On {
    Table,
    Index,
}

/// IAM actions (without the `dynamodb:` prefix) and where they apply.
type Grants = BTreeSet<(String, On)>;

fn show(grants: &Grants) -> String {
    grants
        .iter()
        .map(|(a, on)| match on {
            On::Table => a.clone(),
            On::Index => format!("{a} (index GSI1)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Reading Rust source

/// `src` without comments, without `#[cfg(test)] mod … { … }` blocks and
/// without whitespace, so a builder chain spread over lines reads as one
/// string (`self.client.query().table_name(…)…;`).
fn code_only(src: &str) -> String {
    squeeze(strip_comments(src, false))
}

/// [`code_only`] with every string literal emptied: the calls a file makes.
fn calls_only(src: &str) -> String {
    squeeze(strip_comments(src, true))
}

fn squeeze(without_comments: String) -> String {
    let mut code = without_comments.as_str().to_owned();
    while let Some(start) = code.find("#[cfg(test)]") {
        let after = code[start + "#[cfg(test)]".len()..].trim_start();
        if !after.starts_with("mod ") {
            // A test-only item other than a module: keep it (conservative).
            code.replace_range(start..start + "#[cfg(test)]".len(), "");
            continue;
        }
        let open = start + code[start..].find('{').expect("test module has a body");
        let close = matching_brace(&code, open);
        code.replace_range(start..=close, "");
    }
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

fn strip_comments(src: &str, empty_strings: bool) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            _ if string_end(b, i).is_some() => {
                let start = i;
                i = string_end(b, i).unwrap_or(b.len());
                if empty_strings {
                    out.push_str("\"\"");
                } else {
                    out.push_str(&src[start..i]);
                }
            }
            // A char literal ('"', '\'', 'x'); a lifetime ('a) falls through.
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str(&src[start..i.min(b.len())]);
            }
            _ => {
                let ch = src[i..].chars().next().expect("in bounds");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// Whether the `r` at `i` starts a raw string literal rather than ending an
/// identifier: nothing identifier-like before it, or only a `b` (`br"…"`).
fn raw_prefix_ends_at(b: &[u8], i: usize) -> bool {
    let before = |k: usize| i.checked_sub(k).and_then(|j| b.get(j)).copied();
    match before(1) {
        None => true,
        Some(b'b') => before(2).is_none_or(|c| !is_ident(char::from(c))),
        Some(c) => !is_ident(char::from(c)),
    }
}

/// Where the string literal starting at `i` ends (one past its closing
/// quote), if one starts there: `"…"` with escapes, or a raw string (`r"…"`,
/// `r#"…"#`, `br#"…"#`), which ends at a quote followed by as many `#` as
/// it opened with.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            Some((j + 1).min(b.len()))
        }
        b'r' if raw_prefix_ends_at(b, i) => {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                return None;
            }
            let closing: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let mut j = i + 2 + hashes;
            while j < b.len() && !b[j..].starts_with(&closing) {
                j += 1;
            }
            Some((j + closing.len()).min(b.len()))
        }
        _ => None,
    }
}

fn matching_brace(s: &str, open: usize) -> usize {
    // Braces inside string literals (a JSON fragment in a test) don't count.
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        if let Some(end) = string_end(b, i) {
            i = end;
            continue;
        }
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced braces");
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every `.name(` method call in whitespace-free code, with its position.
fn method_calls(code: &str) -> Vec<(usize, String)> {
    let mut calls = Vec::new();
    for (dot, _) in code.match_indices('.') {
        let name: String = code[dot + 1..]
            .chars()
            .take_while(|&c| is_ident(c))
            .collect();
        if !name.is_empty() && code[dot + 1 + name.len()..].starts_with('(') {
            calls.push((dot, name));
        }
    }
    calls
}

/// The operations called on a DynamoDB `client` (`self.client.x(`,
/// `client.x(`).
fn client_operations(code: &str) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for (at, _) in code.match_indices("client.") {
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue; // e.g. `my_client.`
        }
        let name: String = code[at + "client.".len()..]
            .chars()
            .take_while(|&c| is_ident(c))
            .collect();
        ops.insert(name);
    }
    ops
}

/// SDK operations whose IAM actions this test knows. `transact_write_items`
/// itself has none: IAM authorizes each action inside it (found below from
/// the `Put`/`Update`/`Delete`/`ConditionCheck` builders).
const KNOWN_CLIENT_OPS: &[&str] = &[
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
];

/// The IAM grants of the SDK calls in one role file.
fn grants_of_role_file(file: &str, code: &str) -> Grants {
    for op in client_operations(code) {
        assert!(
            KNOWN_CLIENT_OPS.contains(&op.as_str()),
            "{file}: DynamoDB call `{op}` is unknown to tests/tests/infra.rs: add the IAM actions it needs there and to {STORE_ACCESS}"
        );
    }
    let mut grants = Grants::new();
    let mut grant = |action: &str, on: On| {
        grants.insert((action.to_owned(), on));
    };
    for (at, name) in method_calls(code) {
        // The rest of the statement: where a query names its index.
        let statement = &code[at..at + code[at..].find(';').unwrap_or(code.len() - at)];
        let on = if statement.contains(".index_name(") {
            On::Index
        } else {
            On::Table
        };
        match name.as_str() {
            // Also the store's own `get_item` helper (mod.rs): one GetItem.
            "get_item" => grant("GetItem", On::Table),
            "put_item" => grant("PutItem", On::Table),
            "update_item" => grant("UpdateItem", On::Table),
            "delete_item" => grant("DeleteItem", On::Table),
            "query" => grant("Query", on),
            "scan" => grant("Scan", on),
            "batch_get_item" => grant("BatchGetItem", On::Table),
            "batch_write_item" => grant("BatchWriteItem", On::Table),
            _ => {}
        }
    }
    for (builder, action) in [
        ("Put::builder(", "PutItem"),
        ("Update::builder(", "UpdateItem"),
        ("Delete::builder(", "DeleteItem"),
        ("ConditionCheck::builder(", "ConditionCheckItem"),
        ("Get::builder(", "GetItem"),
    ] {
        if code.contains(builder) {
            let in_transaction = code.contains(".transact_write_items(")
                || code.contains(".transact_get_items(")
                || code.contains(".transact_counted(");
            assert!(
                in_transaction,
                "{file}: `{builder}` outside a transaction: this test cannot tell which call sends it"
            );
            grant(action, On::Table);
        }
    }
    grants
}

/// The store's role traits: what `Backend`, `Store` (and `EventLedger`)
/// are made of.
fn role_traits() -> BTreeSet<String> {
    let src = code_only(&read("shared/src/store/mod.rs"));
    let supertraits = |name: &str| -> Vec<String> {
        let head = format!("pubtrait{name}:");
        let at = src
            .find(&head)
            .unwrap_or_else(|| panic!("shared/src/store/mod.rs: no `pub trait {name}: …`"));
        let rest = &src[at + head.len()..];
        rest[..rest.find('{').expect("trait body")]
            .split('+')
            .map(str::to_owned)
            .collect()
    };
    let mut roles = BTreeSet::new();
    // `Backend` is `Store` plus the roles kept out of it (the outbox).
    for t in supertraits("Backend") {
        if t != "Store" {
            roles.insert(t);
        }
    }
    for t in supertraits("Store") {
        if t == "EventLedger" {
            roles.extend(supertraits("EventLedger"));
        } else {
            roles.insert(t);
        }
    }
    roles
}

/// Store role → the IAM grants of the SDK calls its DynamoDB implementation
/// makes.
fn role_grants() -> BTreeMap<String, Grants> {
    let roles = role_traits();
    let dir = repo().join(DYNAMO_DIR);
    let mut by_role: BTreeMap<String, Grants> = BTreeMap::new();
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("store/dynamo exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let file = format!("{DYNAMO_DIR}/{name}");
        let code = calls_only(&fs::read_to_string(&path).expect("read role file"));
        let implemented: Vec<String> = roles
            .iter()
            .filter(|r| code.contains(&format!("impl{r}forDynamoStore")))
            .cloned()
            .collect();
        if name == "mod.rs" {
            // The shared helpers: `get_item` (a GetItem the roles call as
            // `self.get_item(…)`, counted there) and table creation, which
            // tests and tooling call, never a function.
            let allowed = [
                "get_item",
                "create_table",
                "update_time_to_live",
                "wait_until_table_exists",
            ];
            for op in client_operations(&code) {
                assert!(
                    allowed.contains(&op.as_str()),
                    "{file}: DynamoDB call `{op}` in the shared helpers: this test attributes helpers' calls to no role; call it from the role's own file, or teach tests/tests/infra.rs which roles use it"
                );
            }
            continue;
        }
        if name == "counted.rs" {
            // The counted-transaction helper: it only sends the
            // `TransactWriteItems` whose items the seat and enrollment role
            // files build (and whose grants are counted there).
            for op in client_operations(&code) {
                assert_eq!(
                    op, "transact_write_items",
                    "{file}: the counted-transaction helper makes only that call"
                );
            }
            continue;
        }
        assert!(
            !code.contains("create_table("),
            "{file}: a role creates tables?"
        );
        if implemented.is_empty() {
            assert!(
                client_operations(&code).is_empty(),
                "{file} implements no store role but calls DynamoDB: move the call into a role's file"
            );
            continue;
        }
        let grants = grants_of_role_file(&file, &code);
        for role in implemented {
            by_role
                .entry(role)
                .or_default()
                .extend(grants.iter().cloned());
        }
    }
    for role in &roles {
        assert!(
            by_role.contains_key(role),
            "no `impl {role} for DynamoStore` found in {DYNAMO_DIR}"
        );
    }
    by_role
}

/// The Lambda functions: one folder each in `functions/`, whose package (and
/// so binary and `target/lambda/<name>/bootstrap.zip`) has the folder's name.
fn function_dirs() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(repo().join("functions")).expect("functions/") {
        let entry = entry.expect("dir entry");
        if !entry.file_type().expect("file type").is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let manifest = read(&format!("functions/{name}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "functions/{name}/Cargo.toml: the package must be named `{name}` so `make build` writes target/lambda/{name}/bootstrap.zip, the zip Terraform deploys"
        );
        names.insert(name);
    }
    names
}

/// ARCHITECTURE.md's "Store roles" table: role → functions holding it.
fn architecture_roles(functions: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let doc = read("ARCHITECTURE.md");
    let start = doc
        .find("## Store roles")
        .expect("ARCHITECTURE.md has a \"## Store roles\" section");
    let section = &doc[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut held = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let role = cells[1].trim_matches('`').to_owned();
        let holders = functions
            .iter()
            .filter(|f| cells[3].contains(f.as_str()))
            .cloned()
            .collect();
        held.insert(role, holders);
    }
    held
}

// ---------------------------------------------------------------------------
// Reading the Terraform

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Access {
    store_roles: Vec<String>,
    dynamodb: DynamoAccess,
    secrets: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DynamoAccess {
    table: Vec<String>,
    index: Vec<String>,
}

fn store_access() -> BTreeMap<String, Access> {
    serde_json::from_str(&read(STORE_ACCESS)).unwrap_or_else(|e| panic!("{STORE_ACCESS}: {e}"))
}

fn declared_grants(a: &Access) -> Grants {
    let mut g = Grants::new();
    g.extend(a.dynamodb.table.iter().map(|x| (x.clone(), On::Table)));
    g.extend(a.dynamodb.index.iter().map(|x| (x.clone(), On::Index)));
    g
}

/// Every `.tf` file under `infra/`, as (path, whitespace-free text).
fn terraform_files() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read infra dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "build" {
                    walk(&path, out);
                }
            } else if name.ends_with(".tf") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&repo().join("infra"), &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no Terraform under infra/");
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&p).expect("read .tf");
            let squeezed = text
                .lines()
                .map(|l| l.split_once('#').map_or(l, |(code, _)| code))
                .collect::<String>()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            (rel, squeezed)
        })
        .collect()
}

fn count_in(files: &[(String, String)], needle: &str) -> usize {
    files.iter().map(|(_, t)| t.matches(needle).count()).sum()
}

/// A string constant of `shared/src/store/dynamo/keys.rs`.
fn key_constant(name: &str) -> String {
    let code = code_only(&read(&format!("{DYNAMO_DIR}/keys.rs")));
    let head = format!("const{name}:&str=\"");
    let at = code
        .find(&head)
        .unwrap_or_else(|| panic!("keys.rs has no `const {name}: &str`"));
    let rest = &code[at + head.len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

// ---------------------------------------------------------------------------
// The checks

#[test]
fn terraform_deploys_one_lambda_per_function_folder() {
    let dirs = function_dirs();
    let declared: BTreeSet<String> = store_access().into_keys().collect();
    assert_eq!(
        declared, dirs,
        "{STORE_ACCESS} must name exactly the folders of functions/ (it is the list Terraform creates Lambdas from)"
    );

    let tf = terraform_files();
    assert_eq!(
        count_in(&tf, "resource\"aws_lambda_function\""),
        1,
        "infra/ must declare Lambdas in one for_each resource, over local.functions"
    );
    assert_eq!(
        count_in(
            &tf,
            "resource\"aws_lambda_function\"\"fn\"{for_each=local.functions"
        ),
        1
    );
    assert_eq!(
        count_in(
            &tf,
            "store_access=jsondecode(file(\"${path.module}/store-access.json\"))"
        ),
        1,
        "modules/tollgate must read store-access.json"
    );
    assert_eq!(
        count_in(&tf, "functions={forname,accessinlocal.store_access:"),
        1,
        "local.functions must have exactly the functions of store-access.json"
    );
}

#[test]
fn each_function_holds_the_store_roles_architecture_md_lists() {
    let functions = function_dirs();
    let roles = role_traits();
    let held = architecture_roles(&functions);
    assert_eq!(
        held.keys().cloned().collect::<BTreeSet<_>>(),
        roles,
        "ARCHITECTURE.md's \"Store roles\" table must list every role trait of `Store`"
    );
    for (function, access) in store_access() {
        let declared: BTreeSet<String> = access.store_roles.iter().cloned().collect();
        let documented: BTreeSet<String> = held
            .iter()
            .filter(|(_, fs)| fs.contains(&function))
            .map(|(r, _)| r.clone())
            .collect();
        assert_eq!(
            declared, documented,
            "{function}: store roles in {STORE_ACCESS} vs ARCHITECTURE.md's \"Store roles\" table"
        );
        // The handler file itself names no role beyond those it holds.
        let handler = code_only(&read(&format!(
            "shared/src/functions/{}.rs",
            function.replace('-', "_")
        )));
        for role in &roles {
            if !declared.contains(role) {
                assert!(
                    !handler.contains(&format!("dyn{role}>")),
                    "{function} holds `{role}` in its handler but not in {STORE_ACCESS} / ARCHITECTURE.md"
                );
            }
        }
    }
}

#[test]
fn each_role_policy_grants_exactly_the_dynamodb_actions_its_code_calls() {
    let by_role = role_grants();
    let mut failures = Vec::new();
    for (function, access) in store_access() {
        let mut expected = Grants::new();
        for role in &access.store_roles {
            let grants = by_role
                .get(role)
                .unwrap_or_else(|| panic!("{function}: unknown store role `{role}`"));
            expected.extend(grants.iter().cloned());
        }
        let declared = declared_grants(&access);
        if declared != expected {
            failures.push(format!(
                "{function} ({roles}):\n  code calls:        {}\n  {STORE_ACCESS}: {}",
                show(&expected),
                show(&declared),
                roles = access.store_roles.join(", "),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "IAM grants and the code disagree; update {STORE_ACCESS}:\n{}",
        failures.join("\n")
    );

    // The policies are built from that file alone: the only DynamoDB actions
    // spelled in Terraform are the two templates over it, and the stream
    // read of the notification sender, on the table's stream only.
    let tf = terraform_files();
    assert_eq!(
        count_in(&tf, "\"dynamodb:") - count_in(&tf, "TOLLGATE_STORE=\"dynamodb:"),
        3,
        "DynamoDB actions in infra/*.tf must come from store-access.json only (and the stream read)"
    );
    assert_eq!(
        count_in(
            &tf,
            "for_each=each.key==local.notifier?[aws_dynamodb_table.this.stream_arn]:[]"
        ),
        1,
        "the stream is read by the notifier only"
    );
    assert_eq!(
        count_in(
            &tf,
            "actions=[forainlocal.stream_read_actions:\"dynamodb:${a}\"]resources=[statement.value]"
        ),
        1,
        "only the stream read actions, only on the stream"
    );
    assert_eq!(
        count_in(
            &tf,
            "stream_read_actions=[\"DescribeStream\",\"GetRecords\",\"GetShardIterator\",\"ListStreams\"]"
        ),
        1
    );
    assert_eq!(
        count_in(
            &tf,
            "actions=[foraineach.value.dynamodb.table:\"dynamodb:${a}\"]"
        ),
        1
    );
    assert_eq!(
        count_in(
            &tf,
            "actions=[foraineach.value.dynamodb.index:\"dynamodb:${a}\"]"
        ),
        1
    );
    let gsi1 = key_constant("GSI1");
    assert_eq!(count_in(&tf, &format!("gsi1=\"{gsi1}\"")), 1);
    assert_eq!(
        count_in(
            &tf,
            "resources=[\"${aws_dynamodb_table.this.arn}/index/${statement.value}\"]"
        ),
        1
    );
}

#[test]
fn the_secret_is_readable_exactly_by_the_functions_that_load_it() {
    // Every function binary starts through `functions::run`, which builds
    // `Deps::from_env()`; that loads the secrets named by TOLLGATE_SECRETS.
    let run = code_only(&read("shared/src/functions/mod.rs"));
    let setup = code_only(&read("shared/src/setup.rs"));
    let run_loads = run.contains("Deps::from_env()");
    let deps_load = setup.contains("load_secrets(&settings.secrets)");
    for (function, access) in store_access() {
        let main = code_only(&read(&format!("functions/{function}/src/main.rs")));
        let reads = main.contains("tollgate::functions::run::<") && run_loads && deps_load;
        assert_eq!(
            access.secrets, reads,
            "{function}: `secrets` in {STORE_ACCESS} must say whether its cold start loads the secret"
        );
    }

    let tf = terraform_files();
    assert_eq!(
        count_in(&tf, "secretsmanager:"),
        1,
        "the functions' only Secrets Manager permission is GetSecretValue on their secret"
    );
    assert_eq!(
        count_in(
            &tf,
            "for_each=each.value.secrets?[aws_secretsmanager_secret.this.arn]:[]content{sid=\"ReadOwnSecret\"actions=[\"secretsmanager:GetSecretValue\"]resources=[statement.value]"
        ),
        1,
        "GetSecretValue must be granted on the one secret, to the functions store-access.json marks"
    );
}

#[test]
fn the_table_has_the_keys_index_and_ttl_the_store_uses() {
    let tf = terraform_files();
    let table = tf
        .iter()
        .find(|(path, _)| path.ends_with("modules/tollgate/dynamodb.tf"))
        .map(|(_, t)| t.as_str())
        .expect("infra/modules/tollgate/dynamodb.tf");
    let (pk, sk) = (key_constant("PK"), key_constant("SK"));
    let (gsi1pk, gsi1sk) = (key_constant("GSI1PK"), key_constant("GSI1SK"));
    let expires_at = key_constant("EXPIRES_AT");
    for needle in [
        "billing_mode=\"PAY_PER_REQUEST\"".to_owned(),
        format!("hash_key=\"{pk}\"range_key=\"{sk}\""),
        format!(
            "global_secondary_index{{name=local.gsi1hash_key=\"{gsi1pk}\"range_key=\"{gsi1sk}\"projection_type=\"ALL\"}}"
        ),
        format!("ttl{{attribute_name=\"{expires_at}\"enabled=true}}"),
        "point_in_time_recovery{enabled=true".to_owned(),
        "server_side_encryption{enabled=truekms_key_arn=aws_kms_key.data.arn}".to_owned(),
    ] {
        assert!(
            table.contains(&needle),
            "dynamodb.tf must contain `{needle}` (shared/src/store/dynamo/mod.rs, \"Creating the table\")"
        );
    }
    // Only key attributes are declared, all strings.
    let declared: BTreeSet<String> = table
        .match_indices("attribute{name=\"")
        .map(|(at, m)| {
            let rest = &table[at + m.len()..];
            assert!(rest[rest.find('"').unwrap()..].starts_with("\"type=\"S\"}"));
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect();
    assert_eq!(declared, BTreeSet::from([pk, sk, gsi1pk, gsi1sk]));
}

#[test]
fn the_scanner_sees_calls_split_over_lines_and_ignores_comments() {
    let src = r#"
        // self.client.scan() in a comment
        /* and .delete_item() in a block */
        async fn f(&self) {
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1);
            self.query_all("x", q).await;
            let s = "self.client.batch_write_item()";
            let put = Put::builder().build();
            self.client.transact_write_items().send().await;
        }
        #[cfg(test)]
        mod tests { fn t() { client.scan(); } }
    "#;
    let code = calls_only(src);
    assert_eq!(
        show(&grants_of_role_file("x.rs", &code)),
        "PutItem, Query (index GSI1)"
    );
}
