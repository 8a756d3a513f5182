#!/usr/bin/env bash
# `make plan` and `make deploy`: Terraform on infra/ with clear preflight
# messages instead of stack traces.
#
#   infra/tf.sh preflight plan|deploy   terraform present, tfvars present, AWS credentials present
#   infra/tf.sh plan                    terraform init + plan
#   infra/tf.sh deploy                  terraform init + apply (asks for confirmation;
#                                       AUTO_APPROVE=1 skips it)
#
# TFVARS=path picks another variables file (default infra/tollgate.tfvars).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
step=${1:?usage: infra/tf.sh preflight|plan|deploy [plan|deploy]}
target=${2:-$step}
tfvars=${TFVARS:-$here/tollgate.tfvars}
[[ $tfvars = /* ]] || tfvars=$PWD/$tfvars

fail() {
    printf 'make %s: %s\n' "$target" "$1" >&2
    shift
    for line in "$@"; do printf '  %s\n' "$line" >&2; done
    exit 1
}

if [[ -n ${TF_CLI_CONFIG_FILE:-} && ! -e $TF_CLI_CONFIG_FILE ]]; then
    unset TF_CLI_CONFIG_FILE # only makes terraform warn
fi

has_aws_credentials() {
    [[ -n ${AWS_ACCESS_KEY_ID:-} && -n ${AWS_SECRET_ACCESS_KEY:-} ]] && return 0
    [[ -n ${AWS_PROFILE:-} || -n ${AWS_WEB_IDENTITY_TOKEN_FILE:-} ]] && return 0
    [[ -n ${AWS_CONTAINER_CREDENTIALS_RELATIVE_URI:-} || -n ${AWS_CONTAINER_CREDENTIALS_FULL_URI:-} ]] && return 0
    local files=("${AWS_SHARED_CREDENTIALS_FILE:-$HOME/.aws/credentials}" "${AWS_CONFIG_FILE:-$HOME/.aws/config}")
    local f
    for f in "${files[@]}"; do
        [[ -f $f ]] && grep -q -E '^\[(default|profile default)\]' "$f" && return 0
    done
    return 1
}

preflight() {
    command -v terraform >/dev/null 2>&1 || fail "terraform is not installed." \
        "Install Terraform >= 1.11 (https://developer.hashicorp.com/terraform/install) and run make $target again."
    local version
    version=$(terraform version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p')
    if [[ -n $version ]] && ! printf '1.11.0\n%s\n' "$version" | sort -V -C; then
        fail "terraform $version is too old." "Install Terraform >= 1.11."
    fi
    [[ -f $tfvars ]] || fail "no variables file: $tfvars" \
        "cp infra/tollgate.tfvars.example infra/tollgate.tfvars, fill it in (README, \"Deploy\"),"\
        "or point TFVARS at yours: make $target TFVARS=path/to/file.tfvars"
    if [[ ${SKIP_AWS_CREDENTIALS_CHECK:-} != 1 ]] && ! has_aws_credentials; then
        fail "no AWS credentials found." \
            "Log in first, e.g. 'aws sso login --profile NAME' then 'export AWS_PROFILE=NAME',"\
            "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN)."\
            "On an instance or in CI with a role, set SKIP_AWS_CREDENTIALS_CHECK=1."
    fi
    if command -v aws >/dev/null 2>&1; then
        local who
        if ! who=$(aws sts get-caller-identity --query Arn --output text 2>&1); then
            fail "the AWS credentials do not work: ${who//$'\n'/ }" \
                "Refresh them (e.g. aws sso login --profile NAME) and run make $target again."
        fi
        printf 'make %s: deploying as %s\n' "$target" "$who"
    fi
}

init() {
    terraform -chdir="$here" init -input=false >/dev/null ||
        fail "terraform init failed (see above)." "It needs registry.terraform.io (providers hashicorp/aws >= 6.28, hashicorp/archive)."
}

case $step in
preflight)
    preflight
    ;;
plan)
    init
    terraform -chdir="$here" plan -input=false -var-file="$tfvars"
    ;;
deploy)
    init
    approve=()
    [[ ${AUTO_APPROVE:-} = 1 ]] && approve=(-auto-approve)
    terraform -chdir="$here" apply -input=false "${approve[@]}" -var-file="$tfvars"
    cat <<MSG

Deployed. Next (README, "Deploy"):
  - the secret's value, if not set yet:  $(terraform -chdir="$here" output -raw secret_put_command)
  - paste the URLs:                       terraform -chdir=infra output
  - check each function:                  curl -s <url>/healthz   (entitlement-check with check_auth = aws_iam: a signed request)
MSG
    ;;
*)
    fail "unknown step $step" "usage: infra/tf.sh preflight|plan|deploy"
    ;;
esac
