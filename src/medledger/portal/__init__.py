"""The patient portal: a web page the node serves; all cryptography runs in the browser."""
