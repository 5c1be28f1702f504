output "function_name" {
  description = "Name of the cleanup function."
  value       = module.function.function_name
}

output "function_arn" {
  description = "Unqualified ARN of the cleanup function."
  value       = module.function.function_arn
}

output "alias_arn" {
  description = "ARN of the cleanup function's live alias."
  value       = module.function.alias_arn
}

output "handler" {
  description = "Handler of the cleanup function."
  value       = module.function.handler
}

output "role" {
  description = "Execution role of the cleanup function (name and ARN)."
  value       = module.function.role
}

output "role_policy_json" {
  description = "The inline least-privilege policy of the cleanup role."
  value       = module.function.role_policy_json
}

output "log_group_name" {
  description = "Name of the cleanup function's log group."
  value       = module.function.log_group_name
}

output "log_group_arn" {
  description = "ARN of the cleanup function's log group."
  value       = module.function.log_group_arn
}

output "layers" {
  description = "Layer version ARNs the cleanup function was created with."
  value       = module.function.layers
}

output "environment_variables" {
  description = "Environment variables of the cleanup function."
  value       = module.function.environment_variables
  sensitive   = true
}

output "reserved_concurrent_executions" {
  description = "Concurrency reserved for the function; -1 when it runs on the account's unreserved pool."
  value       = module.function.reserved_concurrent_executions
}

output "runtime" {
  description = "Runtime of the cleanup function."
  value       = module.function.runtime
}

output "architectures" {
  description = "Instruction set architectures of the cleanup function."
  value       = module.function.architectures
}

output "snap_start_apply_on" {
  description = "What SnapStart applies to (PublishedVersions), or None when it is off."
  value       = module.function.snap_start_apply_on
}
