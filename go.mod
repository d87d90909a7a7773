module github.com/churnflow/churnflow

go 1.26.8

require (
	github.com/valyala/fastjson v1.6.10
	gopkg.in/yaml.v3 v3.0.1
)
