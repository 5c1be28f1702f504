output "layer_name" {
  description = "Name of the layer (stable across versions)."
  value       = try(aws_lambda_layer_version.this[0].layer_name, var.layer_name)
}

output "layer_arn" {
  description = "ARN of the layer without a version; tasks publish new versions under it."
  value       = try(aws_lambda_layer_version.this[0].layer_arn, null)
}

output "version_arn" {
  description = "ARN of the layer version Terraform created (the bootstrap version)."
  value       = try(aws_lambda_layer_version.this[0].arn, null)
}

output "version" {
  description = "Number of the layer version Terraform created."
  value       = try(aws_lambda_layer_version.this[0].version, null)
}
