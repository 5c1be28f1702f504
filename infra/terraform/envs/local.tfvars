# Local environment: everything runs against the moto server started by
# `inv local.up` (or `inv deploy --env local`, which starts it). The deploy task passes the endpoint itself, from
# invoke.yaml (deploy.environments.local.emulator), e.g.
#   -var aws_endpoint=http://127.0.0.1:5000
# with AWS_ENDPOINT_URL=http://127.0.0.1:5000 in Terraform's environment (by hand: set both).
environment                   = "local"
aws_region                    = "us-east-1"
runtime                       = "python3.12"
architecture                  = "x86_64"
log_retention_days            = 1
artifact_bucket_force_destroy = true
# The emulator is thrown away with its buckets; lifecycle rules there would only cost the
# provider's one-time ~55 s wait for them to read back stable on every fresh emulator.
artifact_lifecycle_enabled = false
# The emulator is thrown away: its secrets need no recovery window (which would block the name).
secret_recovery_window_days = 0

# No CI deploy role against the emulator.
github_repository = ""
