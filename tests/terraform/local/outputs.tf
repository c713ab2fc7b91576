output "pipelines" {
  description = "What each pipeline's root module reports, by environment name."
  value = {
    for name, p in module.pipeline : name => {
      input_bucket       = p.input_bucket
      output_bucket      = p.output_bucket
      manifest_bucket    = p.manifest_bucket
      tracking_table     = p.tracking_table
      state_machine_arn  = p.state_machine_arn
      queue_url          = p.queue_url
      dead_letter_queues = p.dead_letter_queues
      kms_key_arn        = p.kms_key_arn
      function_names     = p.function_names
      athena_table       = p.athena_table
    }
  }
}
