# A small IAM policy evaluator for `terraform test`: which of a list of requests one policy
# document allows, denies explicitly, or leaves to the implicit deny. It reads the policy TEXT
# (what AWS gets), so a test can show that a request is refused by the statements themselves,
# not by an assertion about their shape.
#
# Supported: Action/NotAction, Resource/NotResource with IAM's * and ? wildcards (actions
# case-insensitive), and the condition operators this stack writes: StringEquals,
# StringNotEquals, StringLike, ForAllValues:StringLike, Null and NumericGreaterThanEqual, with IAM's rules for a key the
# request does not carry (StringNotEquals and ForAllValues hold, the others fail). Any other
# operator is listed in output.unsupported, which the tests require to be empty: the evaluator
# never guesses.

variable "policy_json" {
  description = "An IAM policy document, as AWS receives it."
  type        = string
}

variable "requests" {
  description = "Named requests: an action, a resource ARN, and the condition keys the request carries (absent key: not carried)."
  type = map(object({
    action   = string
    resource = string
    context  = optional(map(list(string)), {})
  }))
}

locals {
  operators = ["StringEquals", "StringNotEquals", "StringLike", "ForAllValues:StringLike", "Null", "NumericGreaterThanEqual"]

  # IAM wildcards to an anchored RE2 pattern: escape the regex metacharacters, then * and ?.
  statements = [for s in jsondecode(var.policy_json).Statement : {
    effect        = s.Effect
    actions       = [for a in try(flatten([s.Action]), []) : "^${replace(replace(replace(lower(a), "/([.+()\\[\\]{}|^$\\\\])/", "\\$1"), "*", ".*"), "?", ".")}$"]
    not_actions   = [for a in try(flatten([s.NotAction]), []) : "^${replace(replace(replace(lower(a), "/([.+()\\[\\]{}|^$\\\\])/", "\\$1"), "*", ".*"), "?", ".")}$"]
    has_action    = can(s.Action)
    resources     = [for r in try(flatten([s.Resource]), []) : "^${replace(replace(replace(r, "/([.+()\\[\\]{}|^$\\\\])/", "\\$1"), "*", ".*"), "?", ".")}$"]
    not_resources = [for r in try(flatten([s.NotResource]), []) : "^${replace(replace(replace(r, "/([.+()\\[\\]{}|^$\\\\])/", "\\$1"), "*", ".*"), "?", ".")}$"]
    has_resource  = can(s.Resource)
    conditions = flatten([for op, block in try(s.Condition, {}) : [for key, values in block : {
      op       = op
      key      = key
      values   = [for v in flatten([values]) : tostring(v)]
      patterns = [for v in flatten([values]) : "^${replace(replace(replace(tostring(v), "/([.+()\\[\\]{}|^$\\\\])/", "\\$1"), "*", ".*"), "?", ".")}$"]
    }]])
  }]

  matches = { for name, req in var.requests : name => [for s in local.statements : alltrue([
    s.has_action ? anytrue([for p in s.actions : can(regex(p, lower(req.action)))]) : !anytrue([for p in s.not_actions : can(regex(p, lower(req.action)))]),
    s.has_resource ? anytrue([for p in s.resources : can(regex(p, req.resource))]) : !anytrue([for p in s.not_resources : can(regex(p, req.resource))]),
    alltrue([for c in s.conditions : (
      c.op == "StringEquals" ? length(setintersection(lookup(req.context, c.key, []), c.values)) > 0 :
      c.op == "StringNotEquals" ? length(setintersection(lookup(req.context, c.key, []), c.values)) == 0 :
      c.op == "StringLike" ? anytrue([for v in lookup(req.context, c.key, []) : anytrue([for p in c.patterns : can(regex(p, v))])]) :
      c.op == "ForAllValues:StringLike" ? alltrue([for v in lookup(req.context, c.key, []) : anytrue([for p in c.patterns : can(regex(p, v))])]) :
      c.op == "Null" ? (c.values[0] == "true") == !contains(keys(req.context), c.key) :
      c.op == "NumericGreaterThanEqual" ? anytrue([for v in lookup(req.context, c.key, []) : anytrue([for w in c.values : tonumber(v) >= tonumber(w)])]) :
      false
    )]),
  ]) ? s.effect : "none"] }
}

output "decisions" {
  description = "Each request: \"deny\" (an explicit Deny matches), \"allow\" (an Allow matches, no Deny), or \"implicit-deny\"."
  value = { for name, effects in local.matches : name => (
    contains(effects, "Deny") ? "deny" : contains(effects, "Allow") ? "allow" : "implicit-deny"
  ) }
}

output "unsupported" {
  description = "Condition operators in the policy this evaluator does not implement (must be empty for its answers to count)."
  value       = sort(distinct(flatten([for s in local.statements : [for c in s.conditions : c.op if !contains(local.operators, c.op)]])))
}
