output "bucket_names" {
  description = "Bucket names by role (input, output, manifest)."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.id }
}

output "bucket_arns" {
  description = "Bucket ARNs by role (input, output, manifest)."
  value       = { for role, bucket in aws_s3_bucket.this : role => bucket.arn }
}
