#!/usr/bin/env bash
# Offline checks of the Terraform in infra/, run by `make infra-check` (and so
# by `make test`). Nothing here calls AWS or needs credentials.
#
#   1. terraform fmt -check -recursive
#   2. terraform validate, as far as it goes offline: without providers,
#      validate reports core-language errors and then stops at "Missing
#      required provider"; that stop is accepted, any other error fails. When
#      `terraform init` can install the providers (a machine with registry
#      access), the full validate and the module's `terraform test` (mock
#      providers, no AWS) run too; otherwise they are skipped with the reason.
#   3. checkov (pinned in tools/requirements-infra.txt): zero failed checks;
#      every suppression is an inline `#checkov:skip=CKV_…:reason`.
#
# Without terraform on the machine, steps 1-2 are skipped with the reason;
# checkov always runs (and tests/tests/infra.rs runs in `cargo test`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
checkov=${CHECKOV:?CHECKOV must name the checkov executable (make infra-check sets it)}
say() { printf 'infra-check: %s\n' "$*"; }
started=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A TF_CLI_CONFIG_FILE naming a file that does not exist only makes terraform
# print a warning on every command.
if [[ -n ${TF_CLI_CONFIG_FILE:-} && ! -e $TF_CLI_CONFIG_FILE ]]; then
    unset TF_CLI_CONFIG_FILE
fi

# Runs `terraform validate` in $1 without providers; passes when the only
# errors are the providers (or modules) `terraform init` would install.
validate_offline() {
    local dir=$1 out label
    label="infra${dir#"$work"}"
    if out=$(terraform -chdir="$dir" validate -no-color 2>&1); then
        say "terraform validate $label: ok"
        return 0
    fi
    local other
    other=$(grep '^Error: ' <<<"$out" | grep -v -e '^Error: Missing required provider$' -e '^Error: Module not installed$' || true)
    if [[ -n $other ]]; then
        printf '%s\n' "$out" >&2
        say "terraform validate $label: FAILED" >&2
        return 1
    fi
    say "terraform validate $label: no core-language errors (provider schemas not checked: providers not installed)"
}

if command -v terraform >/dev/null 2>&1; then
    say "$(terraform version | head -n1)"
    if ! terraform fmt -check -recursive -diff "$here"; then
        say "terraform fmt: FAILED (run: terraform fmt -recursive infra)" >&2
        exit 1
    fi
    say "terraform fmt -check -recursive infra: ok"

    # Work on a copy so that init never leaves .terraform/ or a lock file in
    # the repository.
    work=$tmp/infra
    mkdir "$work"
    (cd "$here" && tar --exclude=.terraform --exclude=./build --exclude='*.tfstate*' --exclude='*.tfvars' -cf - .) | tar -xf - -C "$work"

    validate_offline "$work"
    validate_offline "$work/modules/tollgate"

    if init_out=$(timeout 120 terraform -chdir="$work" init -backend=false -input=false -no-color 2>&1); then
        terraform -chdir="$work" validate -no-color
        say "terraform validate (with providers): ok"
        if timeout 120 terraform -chdir="$work/modules/tollgate" init -backend=false -input=false -no-color >/dev/null 2>&1; then
            terraform -chdir="$work/modules/tollgate" test -no-color
        fi
    else
        reason=$(grep -o -m1 'could not connect to [^:]*' <<<"$init_out" || grep -m1 '^Error:' <<<"$init_out" || true)
        say "terraform validate with providers and terraform test: skipped: terraform init cannot install the providers here (${reason:-see terraform init})"
    fi
else
    say "terraform not found: skipped terraform fmt and validate (install Terraform >= 1.11 to run them); checkov and tests/tests/infra.rs still run"
fi

# Every suppression names its check and says why.
bare=$(grep -rn --include='*.tf' 'checkov:skip' "$here" | grep -v -E 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+:.{20,}' || true)
if [[ -n $bare ]]; then
    printf '%s\n' "$bare" >&2
    say "checkov suppressions without a reason (write #checkov:skip=CKV_…:why)" >&2
    exit 1
fi

# checkov: offline (--skip-download), zero failed checks; its summary line
# prints the passed/failed/skipped counts. Twice: with the defaults, and with
# tollgate.tfvars.example switched to check_auth = "api_key" (the alarm topic
# and a public entitlement-check URL are then scanned too).
checkov_run() {
    "$checkov" --directory "$here" --framework terraform secrets --skip-download --compact --quiet \
        --skip-path "$here/build" --skip-path "$here/modules/tollgate/tests" "$@"
}
say "checkov (defaults):"
checkov_run
example=$tmp/example.tfvars
sed 's/^check_auth *= *"aws_iam"/check_auth = "api_key"/' "$here/tollgate.tfvars.example" >"$example"
say "checkov (tollgate.tfvars.example, check_auth = \"api_key\"):"
checkov_run --var-file "$example"
say "checkov: no failed checks"
say "done in $((SECONDS - started)) s"
