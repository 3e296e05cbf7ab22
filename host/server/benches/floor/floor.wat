(component
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $incoming-request))
  (alias export $types "response-outparam" (type $response-outparam))
  (core module $m
    (memory (export "memory") 1)
    (global $next (mut i32) (i32.const 4096))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p
        (i32.and
          (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
          (i32.sub (i32.const 0) (local.get 2))))
      (global.set $next (i32.add (local.get $p) (local.get 3)))
      (local.get $p))
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (i32.const 1120))
    (func (export "wasi-handle") (param i32 i32) unreachable)
    (data (i32.const 1024) "Hello from wasmfn!\n")
    (data (i32.const 1056) "content-type")
    (data (i32.const 1072) "text/plain; charset=utf-8")
    (data (i32.const 1104) "\20\04\00\00\0c\00\00\00\30\04\00\00\19\00\00\00")
    (data (i32.const 1120) "\01\00\00\00\c8\00\00\00\50\04\00\00\01\00\00\00\00\04\00\00\13\00\00\00"))
  (core instance $i (instantiate $m))
  (type $response (record
    (field "status" u16)
    (field "headers" (list (tuple string (list u8))))
    (field "body" (list u8))))
  (func $handle
    (param "method" string) (param "path-with-query" string)
    (param "headers" (list (tuple string (list u8)))) (param "body" (list u8))
    (result (option $response))
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (component $handler
    (type $r (record
      (field "status" u16)
      (field "headers" (list (tuple string (list u8))))
      (field "body" (list u8))))
    (import "import-type-response" (type $ir (eq $r)))
    (import "import-func-handle" (func $f
      (param "method" string) (param "path-with-query" string)
      (param "headers" (list (tuple string (list u8)))) (param "body" (list u8))
      (result (option $ir))))
    (export $er "response" (type $ir))
    (export "handle" (func $f)
      (func (param "method" string) (param "path-with-query" string)
        (param "headers" (list (tuple string (list u8)))) (param "body" (list u8))
        (result (option $er)))))
  (instance $h (instantiate $handler
    (with "import-type-response" (type $response))
    (with "import-func-handle" (func $handle))))
  (export "wasmfn:function/handler@0.1.0" (instance $h))
  (func $wasi-handle
    (param "request" (own $incoming-request)) (param "response-out" (own $response-outparam))
    (canon lift (core func $i "wasi-handle")))
  (instance $ih (export "handle" (func $wasi-handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $ih)))
