locals {
  # A local emulator (moto) answers every service on one URL; null keeps the
  # provider's real endpoints and the normal credential chain.
  emulated = var.aws_endpoint != null
}

# No `endpoints` block: the emulator's URL reaches the provider as AWS_ENDPOINT_URL, which the
# deploy's Terraform runner sets for an emulated environment (deploy/terraform/runner.py). The
# provider validates a custom `endpoints` block in about 2.4 CPU-seconds at each start, twice per
# plan: 8 of a plan's 13 CPU-seconds here. By hand: AWS_ENDPOINT_URL=<url> terraform plan -var aws_endpoint=<url>.

provider "aws" {
  region = var.aws_region

  access_key = local.emulated ? "test" : null
  secret_key = local.emulated ? "test" : null

  s3_use_path_style           = local.emulated
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated

  default_tags {
    tags = merge(var.tags, {
      Project     = var.name_prefix
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
