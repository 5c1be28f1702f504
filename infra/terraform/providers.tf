locals {
  # A local emulator (moto) answers every service on one URL; null keeps the
  # provider's real endpoints and the normal credential chain.
  emulated = var.aws_endpoint != null
}

provider "aws" {
  region = var.aws_region

  access_key = local.emulated ? "test" : null
  secret_key = local.emulated ? "test" : null

  s3_use_path_style           = local.emulated
  skip_credentials_validation = local.emulated
  skip_requesting_account_id  = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated

  endpoints {
    cloudwatchlogs = var.aws_endpoint
    iam            = var.aws_endpoint
    lambda         = var.aws_endpoint
    s3             = var.aws_endpoint
    secretsmanager = var.aws_endpoint
    sts            = var.aws_endpoint
  }

  default_tags {
    tags = merge(var.tags, {
      Project     = var.name_prefix
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}
