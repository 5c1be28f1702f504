variable "github_repository" {
  description = "GitHub repository as owner/name whose workflows may deploy."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "environment" {
  description = "Deployment environment; also the GitHub environment name allowed to assume the role."
  type        = string
}

variable "role_name" {
  description = "Name of the deploy role."
  type        = string
}

variable "create_oidc_provider" {
  description = "Whether to create the GitHub OIDC provider (one per account); when false, oidc_provider_arn is used."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN, used when create_oidc_provider is false."
  type        = string
  default     = null
}

variable "layer_arn" {
  description = "Unversioned ARN of the dependency layer the role publishes versions of."
  type        = string
}

variable "function_arns" {
  description = "Unqualified ARNs of the functions the role deploys (their versions and aliases are included)."
  type        = list(string)
}

variable "artifact_bucket_arn" {
  description = "ARN of the artifact bucket."
  type        = string
}

variable "artifact_prefix" {
  description = "Key prefix of the artifacts inside the bucket, ending with \"/\"."
  type        = string
}

variable "execution_role_arns" {
  description = "Execution roles of the functions, readable so that terraform plan can run in CI."
  type        = list(string)
  default     = []
}

variable "log_group_arns" {
  description = "Log groups of the functions, readable so that terraform plan can run in CI."
  type        = list(string)
  default     = []
}

variable "state_bucket" {
  description = "S3 bucket holding this environment's Terraform state (the deploy workflow runs terraform apply); null to grant nothing."
  type        = string
  default     = null
}

variable "state_key" {
  description = "Key of the state object inside state_bucket (workspace prefix env:/<environment>/ is added)."
  type        = string
  default     = "terraform.tfstate"
}
