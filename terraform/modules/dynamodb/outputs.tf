output "table_name" {
  description = "Name of the tracking table."
  value       = aws_dynamodb_table.this.name
}

output "table_arn" {
  description = "ARN of the tracking table."
  value       = aws_dynamodb_table.this.arn
}

output "index_arns" {
  description = "ARNs of the table's indexes."
  value       = ["${aws_dynamodb_table.this.arn}/index/pending-index", "${aws_dynamodb_table.this.arn}/index/open-manifests-index"]
}
