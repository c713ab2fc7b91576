data "aws_region" "current" {}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/batch/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# No name argument: provider 5 calls it `compute_environment_name` and provider 6 `name`, and
# versions.tf allows both majors. AWS Batch then gets a unique generated name; the Name tag
# carries ours, and the queue refers to the ARN. A new environment is created before the old
# one is removed, so the queue always has one.
resource "aws_batch_compute_environment" "this" {
  type = "MANAGED"

  compute_resources {
    type               = "FARGATE"
    max_vcpus          = var.max_vcpus
    subnets            = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tags = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_batch_job_queue" "this" {
  name     = var.name
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.this.arn
  }

  tags = var.tags
}

resource "aws_batch_job_definition" "this" {
  name                  = var.name
  type                  = "container"
  platform_capabilities = ["FARGATE"]

  container_properties = jsonencode({
    image                  = var.image
    command                = ["--help"]
    jobRoleArn             = var.job_role_arn
    executionRoleArn       = var.execution_role_arn
    user                   = "10001"
    readonlyRootFilesystem = true
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.vcpus) },
      { type = "MEMORY", value = tostring(var.memory_mb) },
    ]
    # The converter's own environment (module lambda), sized to this container.
    environment = [
      for name, value in merge(var.converter_environment, {
        MEMORY_BUDGET_MB = tostring(floor(var.memory_mb * 0.8))
        THREADS          = tostring(var.vcpus)
      }) : { name = name, value = value }
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this.name
        awslogs-region        = data.aws_region.current.id
        awslogs-stream-prefix = "converter"
      }
    }
    networkConfiguration = {
      assignPublicIp = var.assign_public_ip ? "ENABLED" : "DISABLED"
    }
    fargatePlatformConfiguration = {
      platformVersion = "LATEST"
    }
  })

  # Exit status 75 is `run-manifest`'s "retry later"; anything else is final.
  retry_strategy {
    attempts = var.retry_attempts
    evaluate_on_exit {
      on_exit_code = "75"
      action       = "RETRY"
    }
    evaluate_on_exit {
      on_exit_code = "*"
      action       = "EXIT"
    }
  }

  timeout {
    attempt_duration_seconds = var.attempt_timeout_seconds
  }

  tags = var.tags
}
