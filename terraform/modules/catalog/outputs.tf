output "database_name" {
  description = "The Glue database."
  value       = aws_glue_catalog_database.this.name
}

output "table_name" {
  description = "The Glue table."
  value       = aws_glue_catalog_table.this.name
}
