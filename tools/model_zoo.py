"""The README's model-zoo table, generated from model-index.yml and the family metafiles.

    python tools/model_zoo.py            # print the table
    python tools/model_zoo.py --update   # write it into README.md (between the markers)
    python tools/model_zoo.py --check    # exit 1 if README.md is out of date (run by the tests)

The metafiles (mim's format) are the single source: every config with the paper's published
numbers (marked "paper"), parameters, the official weights and the command converting them.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List

import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
START, END = '<!-- model-zoo:start -->', '<!-- model-zoo:end -->'


def load_model_index(repo: str = REPO) -> Dict[str, List[dict]]:
    """``{'collections': [...], 'models': [...]}`` over every metafile model-index imports."""
    with open(osp.join(repo, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    collections, models = [], []
    for path in index['Import']:
        with open(osp.join(repo, path)) as f:
            meta = yaml.safe_load(f)
        for collection in meta['Collections']:
            collections.append(dict(collection, metafile=path))
        models += [dict(model, metafile=path) for model in meta['Models']]
    return dict(collections=collections, models=models)


def _metrics(model: dict) -> str:
    parts = []
    for result in model.get('Results') or []:
        for name, value in result['Metrics'].items():
            parts.append(f'{result["Dataset"]} {name} {value} ({result.get("Source", "mmlk")})')
    return '; '.join(parts) or 'not published'


def model_zoo_table(repo: str = REPO) -> str:
    index = load_model_index(repo)
    papers = {c['Name']: c['Paper']['URL'] for c in index['collections']}
    lines = ['| family | config | results | params | weights |', '|---|---|---|---|---|']
    for model in index['models']:
        family = model['In Collection']
        params = model.get('Metadata', {}).get('Parameters')
        params = f'{params / 1e6:.2f}M' if params else ''
        if 'Convert' in model:
            official = model.get('Official Weights', '')
            official = f'[official]({official})' if official.startswith('http') else 'official'
            weights = f'{official}, then `{model["Convert"].split(" ")[1]}`'
        else:
            weights = f'init from {model["Pretrained"]}' if 'Pretrained' in model else ''
        lines.append(f'| [{family}]({papers[family]}) | [`{osp.basename(model["Config"])}`]'
                     f'({model["Config"]}) | {_metrics(model)} | {params} | {weights} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--update', action='store_true', help='write the table into README.md')
    mode.add_argument('--check', action='store_true', help='fail if README.md is out of date')
    args = parser.parse_args()
    table = model_zoo_table()
    if not (args.check or args.update):
        print(table)
        return
    readme = osp.join(REPO, 'README.md')
    text = open(readme).read()
    if START not in text or END not in text:
        raise SystemExit(f'README.md has no {START} ... {END} block')
    head, rest = text.split(START, 1)
    current = rest.split(END, 1)[0].strip()
    if args.check:
        if current != table:
            raise SystemExit('README.md model zoo is out of date: run python tools/model_zoo.py '
                             '--update')
        print('README.md model zoo is up to date')
    elif args.update:
        with open(readme, 'w') as f:
            f.write(head + START + '\n' + table + '\n' + END + rest.split(END, 1)[1])
        print(f'updated {readme}')


if __name__ == '__main__':
    sys.exit(main())
