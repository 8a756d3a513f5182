terraform {
  # 1.11: write-only arguments and cross-variable validation used by the root.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.28.0 added `invoked_via_function_url` to aws_lambda_permission: the
      # second statement public function URLs need since October 2025.
      version = ">= 6.28"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}
