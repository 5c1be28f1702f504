# The deploy tasks read every resource name from this one output (deploy/terraform/targets.py
# parses it into deploy.config.Targets); nothing else hard-codes a name.
output "deploy_targets" {
  description = "Contract with the deploy tasks: env, region, bucket, layer, runtime, architecture, alias and functions {key => {name, handler, runtime, architectures, region, sources}}, one per entry of var.functions (the deploy takes runtime and architecture from here)."
  value = {
    env          = var.environment
    region       = var.aws_region
    bucket       = aws_s3_bucket.artifacts.bucket
    layer_name   = module.layer.layer_name
    runtime      = var.runtime
    architecture = var.architecture
    alias        = "live"
    functions = {
      for key, m in local.function_modules : key => {
        name          = m.function_name
        handler       = m.handler
        runtime       = m.runtime
        architectures = m.architectures
        region        = var.aws_region
        sources       = var.functions[key].sources
      }
    }
  }
}

output "artifact_bucket_arn" {
  description = "ARN of the artifact bucket."
  value       = aws_s3_bucket.artifacts.arn
}

output "artifact_prefix" {
  description = "Key prefix of the Lambda artifacts in the bucket."
  value       = var.artifact_prefix
}

output "bootstrap_object_key" {
  description = "Key of the placeholder zip the layer and functions were created from."
  value       = aws_s3_object.bootstrap.key
}

output "layer_arn" {
  description = "Unversioned ARN of the dependency layer."
  value       = module.layer.layer_arn
}

output "layer_bootstrap_version_arn" {
  description = "ARN of the layer version Terraform created; pruning it makes Terraform recreate it."
  value       = module.layer.version_arn
}

output "function_arns" {
  description = "Unqualified function ARNs by function key."
  value       = { for key, m in local.function_modules : key => m.function_arn }
}

output "alias_arns" {
  description = "ARNs of the live aliases by function key."
  value       = { for key, m in local.function_modules : key => m.alias_arn }
}

output "execution_role_arns" {
  description = "Execution role ARNs by function key."
  value       = { for key, m in local.function_modules : key => m.role.arn }
}

output "log_group_names" {
  description = "Log group names by function key."
  value       = { for key, m in local.function_modules : key => m.log_group_name }
}

output "github_deploy_role_arn" {
  description = "Role GitHub Actions assumes to deploy this env (null when github_repository is empty)."
  value       = try(module.github_oidc[0].role_arn, null)
}

output "github_infra_role_arn" {
  description = "ARN of the role GitHub Actions assumes to run terraform apply for this env (null when github_repository is empty)."
  value       = try(module.github_oidc[0].infra_role_arn, null)
}

output "deploy_config_digest" {
  description = "The configuration digest the last apply was given (empty when applied outside the deploy tasks)."
  value       = var.deploy_config_digest
}
