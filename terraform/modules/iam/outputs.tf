output "role_arns" {
  description = "Role ARNs by role: manifest-builder, converter, state-machine, and with Batch batch-job, batch-execution."
  value       = { for role, r in aws_iam_role.this : role => r.arn }
}
