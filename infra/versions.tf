terraform {
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.28" # aws_lambda_permission.invoked_via_function_url
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }

  # State is local (infra/terraform.tfstate, git-ignored) unless you add a
  # backend, e.g. S3 with native locking:
  #
  #   backend "s3" {
  #     bucket       = "my-terraform-state"
  #     key          = "tollgate/terraform.tfstate"
  #     region       = "us-east-1"
  #     use_lockfile = true
  #   }
  #
  # The state holds no secret values (the secret's value is set out of band).
}
