from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.aspect_ratio import AspectRatio
from ..models.output_format import OutputFormat
from ..models.remix_request_n import RemixRequestN
from ..types import UNSET, Unset

T = TypeVar("T", bound="RemixRequest")


@_attrs_define
class RemixRequest:
    """
    Attributes:
        image_urls (list[str]): List of URLs of reference images. Must provide between 1 and 4 images (inclusive). Each
            image must be less than 1.5 MB. Supports PNG, JPEG, WebP, AVIF, and HEIF formats.
        model (str): model is the model name
        prompt (str): The text description of the desired image. May include XML img tags like <img>0</img> to refer to
            specific images by their index in the image_urls list.
        aspect_ratio (AspectRatio | Unset): The desired aspect ratio of the generated image. If not provided, will be
            smartly chosen by the model.

            Possible enum values: `16:9`, `9:16`, `3:2`, `2:3`, `4:3`, `3:4,` `1:1`
        n (RemixRequestN | Unset): n  is the number of images to generate, default value is `1`. Default:
            RemixRequestN.VALUE_1.
        output_format (OutputFormat | Unset): output_format indicate the output format, default value is `url`.
    """

    image_urls: list[str]
    model: str
    prompt: str
    aspect_ratio: AspectRatio | Unset = UNSET
    n: RemixRequestN | Unset = RemixRequestN.VALUE_1
    output_format: OutputFormat | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        image_urls = self.image_urls

        model = self.model

        prompt = self.prompt

        aspect_ratio: str | Unset = UNSET
        if not isinstance(self.aspect_ratio, Unset):
            aspect_ratio = self.aspect_ratio.value

        n: int | Unset = UNSET
        if not isinstance(self.n, Unset):
            n = self.n.value

        output_format: str | Unset = UNSET
        if not isinstance(self.output_format, Unset):
            output_format = self.output_format.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "image_urls": image_urls,
                "model": model,
                "prompt": prompt,
            }
        )
        if aspect_ratio is not UNSET:
            field_dict["aspect_ratio"] = aspect_ratio
        if n is not UNSET:
            field_dict["n"] = n
        if output_format is not UNSET:
            field_dict["output_format"] = output_format

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        image_urls = cast(list[str], d.pop("image_urls"))

        model = d.pop("model")

        prompt = d.pop("prompt")

        _aspect_ratio = d.pop("aspect_ratio", UNSET)
        aspect_ratio: AspectRatio | Unset
        if isinstance(_aspect_ratio, Unset):
            aspect_ratio = UNSET
        else:
            aspect_ratio = AspectRatio(_aspect_ratio)

        _n = d.pop("n", UNSET)
        n: RemixRequestN | Unset
        if isinstance(_n, Unset):
            n = UNSET
        else:
            n = RemixRequestN(_n)

        _output_format = d.pop("output_format", UNSET)
        output_format: OutputFormat | Unset
        if isinstance(_output_format, Unset):
            output_format = UNSET
        else:
            output_format = OutputFormat(_output_format)

        remix_request = cls(
            image_urls=image_urls,
            model=model,
            prompt=prompt,
            aspect_ratio=aspect_ratio,
            n=n,
            output_format=output_format,
        )

        remix_request.additional_properties = d
        return remix_request

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
