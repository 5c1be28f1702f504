output "role_arn" {
  description = "ARN of the deploy role (publish, attach, verify), for aws-actions/configure-aws-credentials."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the deploy role."
  value       = aws_iam_role.this.name
}

output "oidc_provider_arn" {
  description = "ARN of the GitHub OIDC provider the role trusts."
  value       = local.oidc_provider_arn
}

output "policy_json" {
  description = "The deploy role's inline policy."
  value       = aws_iam_role_policy.this.policy
}

output "infra_role_arn" {
  description = "ARN of the infrastructure role (terraform apply)."
  value       = aws_iam_role.infra.arn
}

output "infra_policy_json" {
  description = "The infrastructure role's inline policy."
  value       = aws_iam_role_policy.infra.policy
}

output "execution_boundary_arn" {
  description = "ARN of the permissions boundary every execution role must carry (the infrastructure role creates roles only under it)."
  value       = aws_iam_policy.boundary.arn
}

output "execution_boundary_json" {
  description = "The execution roles' permissions boundary document."
  value       = aws_iam_policy.boundary.policy
}
