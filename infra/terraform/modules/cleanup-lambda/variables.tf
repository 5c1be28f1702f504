variable "create" {
  description = "Whether to create the cleanup function."
  type        = bool
  default     = true
}

variable "name" {
  description = "Function name."
  type        = string
}

variable "description" {
  description = "Function description."
  type        = string
  default     = "Deletes stale objects under one bucket prefix."
}

variable "handler" {
  description = "Handler as module.function, relative to the root of the code zip."
  type        = string
  default     = "lambdas.cleanup.handler.handler"
}

variable "runtime" {
  description = "Lambda runtime identifier, e.g. python3.12."
  type        = string
}

variable "architecture" {
  description = "Instruction set architecture: x86_64 or arm64."
  type        = string
}

variable "layers" {
  description = "Layer version ARNs attached on create; the deploy tasks own them afterwards."
  type        = list(string)
  default     = []
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
  description = "Extra environment variables; CLEANUP_BUCKET and CLEANUP_PREFIX are set by this module."
  type        = map(string)
  default     = {}
}

variable "memory_size" {
  description = "Memory in MB."
  type        = number
  default     = 256
}

variable "timeout" {
  description = "Timeout in seconds."
  type        = number
  default     = 300
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 30
}

variable "cleanup_bucket_name" {
  description = "Bucket the function cleans."
  type        = string
}

variable "cleanup_bucket_arn" {
  description = "ARN of the bucket the function cleans."
  type        = string
}

variable "cleanup_prefix" {
  description = "Key prefix the function may list, read and delete under; must end with \"/\"."
  type        = string

  validation {
    condition     = length(var.cleanup_prefix) > 1 && endswith(var.cleanup_prefix, "/") && !strcontains(var.cleanup_prefix, "*")
    error_message = "cleanup_prefix must be a non-empty key prefix ending with \"/\" and without wildcards."
  }
}

variable "reserved_concurrent_executions" {
  description = "Concurrency reserved for (and capping) the function; -1 leaves it on the account's unreserved pool."
  type        = number
  default     = -1
}

variable "tracing_mode" {
  description = "X-Ray tracing mode, Active or PassThrough."
  type        = string
  default     = "Active"
}

variable "permissions_boundary" {
  description = "ARN of the permissions boundary of the function's execution role; null for none."
  type        = string
  default     = null
}

variable "policy_statements" {
  description = "Extra least-privilege statements for the execution role (e.g. invoking another function), besides the cleanup prefix's."
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
}

variable "snap_start" {
  description = "Lambda SnapStart on published versions (python3.12 and later); set from invoke.yaml snap_start."
  type        = bool
  default     = false
}
