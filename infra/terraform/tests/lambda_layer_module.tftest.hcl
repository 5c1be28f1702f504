# Contract of modules/lambda-layer: Terraform creates the first version only; every
# argument forces a new version, so what the tasks change must not be planned back.

mock_provider "aws" {
  mock_resource "aws_lambda_layer_version" {
    defaults = {
      arn       = "arn:aws:lambda:us-east-1:123456789012:layer:deps:1"
      layer_arn = "arn:aws:lambda:us-east-1:123456789012:layer:deps"
      version   = "1"
    }
  }
}

variables {
  layer_name               = "deps"
  compatible_runtimes      = ["python3.12"]
  compatible_architectures = ["x86_64"]
  s3_bucket                = "bucket"
  s3_key                   = "lambda/bootstrap.zip"
}

run "creates_first_version" {
  command = apply

  module {
    source = "./modules/lambda-layer"
  }

  assert {
    condition     = output.layer_name == "deps" && output.version_arn == "arn:aws:lambda:us-east-1:123456789012:layer:deps:1"
    error_message = "Outputs must name the layer and its first version."
  }
  assert {
    condition     = aws_lambda_layer_version.this[0].skip_destroy
    error_message = "Replacing the Terraform version must not delete it while functions may use it."
  }
}

run "published_versions_do_not_replace" {
  command = plan

  module {
    source = "./modules/lambda-layer"
  }

  variables {
    s3_key              = "lambda/layer-0123abcd.zip"
    description         = "deps 0123abcd"
    compatible_runtimes = ["python3.13"]
  }

  assert {
    condition     = aws_lambda_layer_version.this[0].s3_key == "lambda/bootstrap.zip"
    error_message = "s3_key must be in ignore_changes, or a deploy forces a new layer version."
  }
  assert {
    condition     = aws_lambda_layer_version.this[0].compatible_runtimes == toset(["python3.12"]) && aws_lambda_layer_version.this[0].description == ""
    error_message = "description and compatible_runtimes must be in ignore_changes."
  }
}

run "switched_off_outputs_resolve" {
  command = plan

  module {
    source = "./modules/lambda-layer"
  }

  variables {
    create = false
  }

  assert {
    condition     = output.version_arn == null && output.layer_arn == null && output.layer_name == "deps"
    error_message = "Outputs must resolve when the layer is switched off."
  }
}
