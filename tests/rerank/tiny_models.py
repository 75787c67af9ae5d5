"""Builders of tiny random checkpoints for the rerank tests (no download).

Imported by tests/rerank/conftest.py and, by file path, by tests/llama_index/test_reranker*.py.
"""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "the a is of and to in what where who how why capital france paris berlin germany city river "
    "plants oxygen photosynthesis light water sun energy qdrant stores dense sparse vectors query "
    "document relevant answer judge whether only yes no relevance search engine model cross encoder "
    "long text token tokens more words here there one two three four five six seven eight nine ten"
).split()
PUNCT = [".", ",", "?", ":", "!", '"', "'", "(", ")", "-"]

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_bert_cross_encoder(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer BERT with a 1-label head and a WordPiece tokenizer, saved to ``path``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *PUNCT, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]]
    vocab += list("abcdefghijklmnopqrstuvwxyz0123456789")
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab_file=str(path / "vocab.txt"), model_max_length=128)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def build_tiny_qwen2(path: Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """A 2-layer random Qwen2 causal LM with a WordLevel tokenizer (and a ChatML template)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
    extra = ["system", "user", "assistant", "Judge", "Query", "Document", "Relevant", "Answer"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys([*specials, *WORDS, *extra, *PUNCT]))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=256,
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        pad_token_id=vocab["<|endoftext|>"],
        eos_token_id=vocab["<|im_end|>"],
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # random init is near-uniform; sharpen it so scores differ visibly
        for p in model.parameters():
            p.mul_(20.0 if p.ndim > 1 else 1.0)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
