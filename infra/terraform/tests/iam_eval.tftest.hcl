# The IAM evaluator the policy tests rely on (tests/iam-eval) answers as IAM does, on a policy
# written for the purpose: if it allowed too much or too little, the policy tests would prove
# nothing.

run "evaluator_follows_iam_rules" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = jsonencode({
      Version = "2012-10-17"
      Statement = [
        { Effect = "Allow", Action = "s3:Get*", Resource = "arn:aws:s3:::b/k?" },
        { Effect = "Allow", Action = ["iam:CreateRole"], Resource = ["*"], Condition = { StringEquals = { "iam:PermissionsBoundary" = "arn:b" } } },
        { Effect = "Deny", Action = ["iam:CreateRole"], Resource = ["*"], Condition = { StringNotEquals = { "iam:PermissionsBoundary" = "arn:b" } } },
        { Effect = "Allow", Action = ["lambda:UpdateFunctionConfiguration"], Resource = ["arn:f"], Condition = { "ForAllValues:StringLike" = { "lambda:Layer" = ["arn:l:*"] } } },
        { Effect = "Allow", Action = ["lambda:PublishVersion"], Resource = ["arn:f"], Condition = { "ForAllValues:StringLike" = { "lambda:Layer" = ["arn:l:*"] }, Null = { "lambda:Layer" = "false" } } },
        { Effect = "Allow", Action = ["s3:ListBucket"], Resource = ["arn:aws:s3:::b"], Condition = { StringLike = { "s3:prefix" = ["lambda/*"] } } },
        { Effect = "Deny", NotAction = ["iam:GetRole"], Resource = ["arn:r"] },
        { Effect = "Allow", Action = ["iam:*"], Resource = ["arn:r"] },
      ]
    })
    requests = {
      wildcard_action_and_resource = { action = "S3:GetObject", resource = "arn:aws:s3:::b/k1" }
      question_mark_is_one_char    = { action = "s3:GetObject", resource = "arn:aws:s3:::b/k12" }
      dot_is_literal               = { action = "s3:GetObject", resource = "arn:aws:s3:::bxk1" }
      boundary_given               = { action = "iam:CreateRole", resource = "arn:x", context = { "iam:PermissionsBoundary" = ["arn:b"] } }
      boundary_missing             = { action = "iam:CreateRole", resource = "arn:x" }
      boundary_other               = { action = "iam:CreateRole", resource = "arn:x", context = { "iam:PermissionsBoundary" = ["arn:admin"] } }
      layers_ours                  = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:f", context = { "lambda:Layer" = ["arn:l:1"] } }
      layers_foreign               = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:f", context = { "lambda:Layer" = ["arn:l:1", "arn:x:1"] } }
      layers_absent_for_all_holds  = { action = "lambda:UpdateFunctionConfiguration", resource = "arn:f" }
      layers_absent_null_refuses   = { action = "lambda:PublishVersion", resource = "arn:f" }
      layers_present_null_passes   = { action = "lambda:PublishVersion", resource = "arn:f", context = { "lambda:Layer" = ["arn:l:2"] } }
      like_needs_the_key           = { action = "s3:ListBucket", resource = "arn:aws:s3:::b" }
      like_matches                 = { action = "s3:ListBucket", resource = "arn:aws:s3:::b", context = { "s3:prefix" = ["lambda/x"] } }
      not_action_denies_the_rest   = { action = "iam:PutRolePolicy", resource = "arn:r" }
      not_action_spares_its_list   = { action = "iam:GetRole", resource = "arn:r" }
      nothing_grants               = { action = "ec2:RunInstances", resource = "arn:x" }
    }
  }

  assert {
    condition = output.decisions == {
      wildcard_action_and_resource = "allow"
      question_mark_is_one_char    = "implicit-deny"
      dot_is_literal               = "implicit-deny"
      boundary_given               = "allow"
      boundary_missing             = "deny"
      boundary_other               = "deny"
      layers_ours                  = "allow"
      layers_foreign               = "implicit-deny"
      layers_absent_for_all_holds  = "allow"
      layers_absent_null_refuses   = "implicit-deny"
      layers_present_null_passes   = "allow"
      like_needs_the_key           = "implicit-deny"
      like_matches                 = "allow"
      not_action_denies_the_rest   = "deny"
      not_action_spares_its_list   = "allow"
      nothing_grants               = "implicit-deny"
    }
    error_message = "The evaluator must answer as IAM does (wildcards, absent keys, NotAction, explicit deny first)."
  }
  assert {
    condition     = length(output.unsupported) == 0
    error_message = "Every operator of this policy is implemented."
  }
}

run "evaluator_names_what_it_cannot_judge" {
  command = plan

  module {
    source = "./tests/iam-eval"
  }

  variables {
    policy_json = jsonencode({
      Version   = "2012-10-17"
      Statement = [{ Effect = "Allow", Action = ["s3:GetObject"], Resource = ["*"], Condition = { IpAddress = { "aws:SourceIp" = ["10.0.0.0/8"] } } }]
    })
    requests = { any = { action = "s3:GetObject", resource = "arn:aws:s3:::b/k", context = { "aws:SourceIp" = ["10.1.2.3"] } } }
  }

  assert {
    condition     = output.unsupported == tolist(["IpAddress"]) && output.decisions.any == "implicit-deny"
    error_message = "An operator the evaluator does not implement is named, and never counts as a match."
  }
}
