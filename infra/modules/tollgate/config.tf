# tollgate.toml reaches the functions as a Lambda layer: `make build` produces
# only bootstrap zips, and the configuration is the vendor's, not part of the
# build. The layer holds one file, tollgate.toml, which Lambda mounts at
# /opt/tollgate.toml (TOLLGATE_CONFIG). Changing the file publishes a new layer
# version and updates the four functions; each reads it at its next cold start.

data "archive_file" "config" {
  type        = "zip"
  output_path = "${path.root}/build/${var.name_prefix}-config-layer.zip"

  source {
    content  = file(var.config_file)
    filename = "tollgate.toml"
  }
}

resource "aws_lambda_layer_version" "config" {
  layer_name               = "${var.name_prefix}-config"
  description              = "tollgate.toml, mounted at /opt/tollgate.toml"
  filename                 = data.archive_file.config.output_path
  source_code_hash         = data.archive_file.config.output_base64sha256
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = ["arm64"]

  lifecycle {
    create_before_destroy = true
  }
}
