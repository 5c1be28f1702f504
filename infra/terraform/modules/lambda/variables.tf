variable "create" {
  description = "Whether to create the function and everything it owns."
  type        = bool
  default     = true
}

variable "name" {
  description = "Function name; also names its role and its log group /aws/lambda/<name>."
  type        = string
}

variable "description" {
  description = "Function description."
  type        = string
  default     = ""
}

variable "handler" {
  description = "Handler as module.function, relative to the root of the code zip."
  type        = string
}

variable "runtime" {
  description = "Lambda runtime identifier, e.g. python3.12."
  type        = string
}

variable "architecture" {
  description = "Instruction set architecture: x86_64 or arm64."
  type        = string

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "layers" {
  description = "Layer version ARNs attached on create (at most 5); the deploy tasks own them afterwards."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.layers) <= 5
    error_message = "Lambda allows at most 5 layers per function."
  }
}

variable "s3_bucket" {
  description = "Bucket of the first code zip."
  type        = string
}

variable "s3_key" {
  description = "Key of the first code zip."
  type        = string
}

variable "environment_variables" {
  description = "Environment variables of the function."
  type        = map(string)
  default     = {}
}

variable "memory_size" {
  description = "Memory in MB (128-10240)."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Timeout in seconds (1-900)."
  type        = number
  default     = 30

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900
    error_message = "timeout must be between 1 and 900 seconds."
  }
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 30
}

variable "create_role" {
  description = "Whether to create a dedicated execution role; when false, role_arn is used."
  type        = bool
  default     = true
}

variable "role_arn" {
  description = "Existing execution role ARN, used only when create_role is false."
  type        = string
  default     = null
}

variable "policy_statements" {
  description = "Extra least-privilege statements for the execution role, besides writing its own logs. No wildcard actions."
  type = list(object({
    sid       = string
    actions   = list(string)
    resources = list(string)
    condition = optional(list(object({
      test     = string
      variable = string
      values   = list(string)
    })), [])
  }))
  default = []

  validation {
    condition     = alltrue(flatten([for s in var.policy_statements : [for a in s.actions : !strcontains(a, "*")]]))
    error_message = "policy_statements must name every action; wildcards (\"*\", \"s3:*\", \"s3:Get*\") are not allowed."
  }
}

variable "alias_name" {
  description = "Name of the alias traffic goes through."
  type        = string
  default     = "live"
}

variable "reserved_concurrent_executions" {
  description = "Concurrency reserved for (and capping) the function; -1 leaves it on the account's unreserved pool."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions >= -1 && floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions
    error_message = "reserved_concurrent_executions must be a whole number, -1 (unreserved) or more."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing mode: Active samples and traces every function itself; PassThrough only follows an upstream sampling decision."
  type        = string
  default     = "Active"

  validation {
    condition     = contains(["Active", "PassThrough"], var.tracing_mode)
    error_message = "tracing_mode must be Active or PassThrough."
  }
}

variable "permissions_boundary" {
  description = "ARN of the permissions boundary of the created execution role (the CI infrastructure role creates roles only under it); null for none."
  type        = string
  default     = null
}

variable "snap_start" {
  description = "Lambda SnapStart on published versions (python3.12 and later); set from invoke.yaml snap_start."
  type        = bool
  default     = false
}
