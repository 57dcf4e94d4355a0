module workbench/gotemplate

go 1.19
