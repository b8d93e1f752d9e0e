#!/bin/sh
# The real chat templates of ../shared/chat-templates rendered by `meshlm template`, judged
# byte for byte by their check.py against Hugging Face transformers' renderings.
# usage: chat_templates.sh MESHLM SHARED_DIR
meshlm=$1
dir=$2/chat-templates
if [ ! -r "$dir/cases.jsonl" ] || [ ! -r "$dir/check.py" ]; then
    echo "SKIP: $dir/cases.jsonl or check.py is absent"
    exit 77
fi
if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 is not installed (it runs check.py)"
    exit 77
fi
python3 "$dir/check.py" "$dir/cases.jsonl" -j 2 --show 3 -- "$meshlm" template
