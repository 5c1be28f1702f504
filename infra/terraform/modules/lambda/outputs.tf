output "function_name" {
  description = "Name of the function."
  value       = try(aws_lambda_function.this[0].function_name, null)
}

output "function_arn" {
  description = "Unqualified ARN of the function."
  value       = try(aws_lambda_function.this[0].arn, null)
}

output "alias_name" {
  description = "Name of the alias traffic goes through."
  value       = try(aws_lambda_alias.live[0].name, null)
}

output "alias_arn" {
  description = "ARN of the alias traffic goes through."
  value       = try(aws_lambda_alias.live[0].arn, null)
}

output "handler" {
  description = "Handler of the function."
  value       = try(aws_lambda_function.this[0].handler, null)
}

output "role" {
  description = "Execution role of the function: name and permissions boundary (null when role_arn was passed in) and ARN."
  value = {
    name                 = try(aws_iam_role.this[0].name, null)
    arn                  = local.role_arn
    permissions_boundary = try(aws_iam_role.this[0].permissions_boundary, null)
  }
}

output "role_policy_json" {
  description = "The inline least-privilege policy of the execution role (null when no role was created)."
  value       = local.create_role ? local.policy_json : null
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = try(aws_cloudwatch_log_group.this[0].name, null)
}

output "log_group_arn" {
  description = "ARN of the function's log group."
  value       = local.log_group_arn
}

output "layers" {
  description = "Layer version ARNs the function was created with (the deploy tasks own them afterwards)."
  value       = try(aws_lambda_function.this[0].layers, [])
}

output "environment_variables" {
  description = "Environment variables of the function."
  value       = try(aws_lambda_function.this[0].environment[0].variables, {})
  sensitive   = true
}

output "reserved_concurrent_executions" {
  description = "Concurrency reserved for the function; -1 when it runs on the account's unreserved pool."
  value       = try(aws_lambda_function.this[0].reserved_concurrent_executions, null)
}

output "runtime" {
  description = "Runtime of the function (the deploy builds its layer for it)."
  value       = try(aws_lambda_function.this[0].runtime, null)
}

output "architectures" {
  description = "Instruction set architectures of the function (the deploy builds its layer for them)."
  value       = try(aws_lambda_function.this[0].architectures, null)
}

output "snap_start_apply_on" {
  description = "What SnapStart applies to (PublishedVersions), or None when it is off."
  value       = try(aws_lambda_function.this[0].snap_start[0].apply_on, "None")
}
