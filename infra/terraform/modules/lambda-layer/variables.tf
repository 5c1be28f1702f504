variable "create" {
  description = "Whether to create the layer version."
  type        = bool
  default     = true
}

variable "layer_name" {
  description = "Name of the Lambda layer (without version)."
  type        = string
}

variable "description" {
  description = "Description of the first layer version; later versions are described by the publishing task."
  type        = string
  default     = ""
}

variable "compatible_runtimes" {
  description = "Runtimes the layer is built for, e.g. [\"python3.12\"]."
  type        = list(string)
}

variable "compatible_architectures" {
  description = "Instruction set architectures the layer is built for: x86_64 and/or arm64."
  type        = list(string)

  validation {
    condition     = length(var.compatible_architectures) > 0 && alltrue([for a in var.compatible_architectures : contains(["x86_64", "arm64"], a)])
    error_message = "compatible_architectures must list x86_64 and/or arm64."
  }
}

variable "license_info" {
  description = "License of the layer's content (SPDX identifier or URL)."
  type        = string
  default     = null
}

variable "s3_bucket" {
  description = "Bucket holding the zip of the first layer version."
  type        = string
}

variable "s3_key" {
  description = "Key of the zip of the first layer version."
  type        = string
}
