terraform {
  # Terraform >= 1.10 for the S3 backend's native lock file (use_lockfile).
  required_version = ">= 1.10"

  # Partial configuration: `inv infra.*` passes bucket, key, region and (for the local
  # emulator) its endpoint from invoke.yaml's `state` settings via -backend-config.
  backend "s3" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}
