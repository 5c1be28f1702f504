environment        = "production"
aws_region         = "us-west-2"
runtime            = "python3.12"
architecture       = "x86_64"
log_retention_days = 90

function_settings = {
  api = { memory_size = 1024 }
}

# owner/name of the repository whose GitHub Actions deploy this env. Non-empty
# creates the OIDC deploy role (modules/github-oidc-deploy-role); staging and
# production live in separate accounts, so each creates its own OIDC provider.
github_repository = ""
